"""Acceptance fixtures: the ``perdure`` CLI and ``perdure web`` as subprocesses.

``web_url``: a database shared by one test module, once per backend.
``web_engine``: a launched in-process Engine on it (executes the runs).
``web_server``: ``perdure web`` serving that database (a subprocess), with the
engine's webhook URLs pointing at it.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from perdure import Engine
from perdure.testing import PostgresServer
from perdure.testing._postgres import create_database, drop_database

from . import web_workflows

ROOT = Path(__file__).resolve().parents[2]
PERDURE = [sys.executable, "-m", "perdure.cli"]
_db_counter = itertools.count()
T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 60.0, interval: float = 0.02,
             what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run_cli(url: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("PERDURE_DATABASE_URL", None)
    return subprocess.run([*PERDURE, "--database-url", url, *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=ROOT)


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def web_url(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database for one test module."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('web')}/perdure.db"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"perdure_web{os.getpid()}_{next(_db_counter)}"
    url = create_database(server.url, name)
    yield url
    drop_database(server.url, name)


@dataclass
class WebServer:
    """A running ``perdure web`` subprocess."""

    proc: subprocess.Popen[str]
    base_url: str
    token: str | None = None
    output: list[str] = field(default_factory=list)

    def client(self, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_web(url: str, *args: str, token: str | None = None,
              env: dict[str, str] | None = None) -> WebServer:
    """``perdure web --port 0`` on ``url``; returns once it answers HTTP."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("PERDURE_API_TOKEN", None)
    full_env.pop("PERDURE_WEBHOOK_BASE_URL", None)
    if token:
        full_env["PERDURE_API_TOKEN"] = token
    proc = subprocess.Popen([*PERDURE, "--database-url", url, "web", "--port", "0", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=full_env, cwd=ROOT)
    output: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            output.append(line.rstrip("\n"))
            if line.startswith("perdure web on "):
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(60) or proc.poll() is not None:
        proc.kill()
        raise AssertionError("perdure web did not start:\n" + "\n".join(output))
    line = next(x for x in output if x.startswith("perdure web on "))
    base = line.split()[3].rstrip(":")
    server = WebServer(proc, base, token, output)

    def answers() -> bool:
        try:
            return httpx.get(base + "/openapi.json", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout=30, what="perdure web to answer")
    except AssertionError:
        server.stop()
        raise AssertionError("perdure web never answered:\n" + "\n".join(output)) from None
    return server


@pytest.fixture(scope="module")
def web_server(web_url: str) -> Iterator[WebServer]:
    server = start_web(web_url, "--max-body-bytes", "4096")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web_engine(web_url: str, web_server: WebServer) -> Iterator[Engine]:
    """Executes the runs; its webhook URLs point at ``web_server``."""
    engine = Engine(web_url, webhook_base_url=web_server.base_url, lease_seconds=5,
                    concurrency=8)
    engine.launch()
    yield engine
    for gate in list(web_workflows.GATES.values()):
        gate.set()
    engine.shutdown(timeout=5)


def sse_events(response: httpx.Response, count: int | None = None) -> list[dict[str, Any]]:
    """Parse SSE events from a streaming response, until ``end`` or ``count`` chunks."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in current:
                current["json"] = json.loads(current["data"])
                events.append(current)
                if current.get("event") == "end":
                    break
                if count is not None and len(events) >= count:
                    break
            current = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        current[key] = value[1:] if value.startswith(" ") else value
    return events
