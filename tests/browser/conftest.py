"""Headless Chromium (Debian's ``chromium``) driven by Playwright, and a
``perdure web`` app served from this process (uvicorn in a thread) with a
launched Engine executing the runs.

Playwright's own browser download is never used: the browser is
``/usr/bin/chromium``, installed here with apt when missing and we are root.
Without a browser the tests skip, unless ``PERDURE_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from acceptance import web_workflows
from perdure import Engine

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
REQUIRE_BROWSER = os.environ.get("PERDURE_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"PERDURE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def _ensure_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _unavailable("no /usr/bin/chromium (install Debian's chromium package)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update"], check=True, capture_output=True, env=env,
                       timeout=600)
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True,
                       capture_output=True, env=env, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        _unavailable(f"cannot install chromium with apt-get: {exc}")
    if not CHROMIUM.exists():
        _unavailable("apt-get installed chromium but /usr/bin/chromium is missing")


@pytest.fixture(scope="module")  # sync Playwright holds a running loop while open
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    _ensure_chromium()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        yield chromium
        chromium.close()


@dataclass
class UiServer:
    engine: Engine
    base_url: str


@contextlib.contextmanager
def serve(engine: Engine, **options: Any) -> Iterator[str]:
    """Serve ``create_app(engine)`` on a free loopback port; yields its base URL."""
    import uvicorn

    from perdure.web import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(engine, **options), log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()

    def watch() -> None:
        while not server.started and thread.is_alive():
            started.wait(0.02)
        started.set()

    threading.Thread(target=watch, daemon=True).start()
    assert started.wait(30) and server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui')}/perdure.db"
    engine = Engine(url, lease_seconds=5, concurrency=8)
    engine.launch()
    try:
        with serve(engine) as base:
            yield UiServer(engine, base)
    finally:
        for gate in list(web_workflows.GATES.values()):
            gate.set()
        engine.shutdown(timeout=5)
