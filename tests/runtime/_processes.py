"""Worker subprocesses and raw database access for crash and recovery tests."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg

from perdure.testing import wait_for as _wait_for

WORKFLOWS = str(Path(__file__).with_name("workflows.py"))
REPO = Path(__file__).resolve().parents[2]


def spawn_worker(url: str, *, lease: float = 2.0, concurrency: int = 4,
                 drain_timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """A real ``perdure worker`` process running tests/runtime/workflows.py."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", "from perdure.cli import main; main()",
         "--database-url", url, "worker", WORKFLOWS, "--lease", str(lease),
         "--concurrency", str(concurrency), "--poll-interval", "0.05",
         "--drain-timeout", str(drain_timeout)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill(proc)


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    _wait_for(condition, timeout=timeout, interval=0.02)


def execute_sql(url: str, sql: str) -> None:
    """Run raw SQL on the test database (to simulate a lost queue)."""
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute(sql)
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.replace("FROM jobs", "FROM perdure.jobs"))
