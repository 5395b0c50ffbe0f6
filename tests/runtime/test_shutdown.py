"""SIGTERM: a worker drains in-flight work, and gives back what it cannot finish."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from perdure import Engine

from . import workflows as w
from ._processes import spawn_worker, stop, wait_for


def test_sigterm_lets_the_running_step_finish(backend_url: str, tmp_path: Path) -> None:
    client = Engine(backend_url)
    run = client.start(w.slow_wf, str(tmp_path), 1.0)
    worker = spawn_worker(backend_url, lease=30.0)
    try:
        wait_for(lambda: any(tmp_path.glob("started-*")), timeout=60)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        stop(worker)
    # The step finished during the drain, and its result was recorded.
    assert run.result(timeout=5) == f"slept in {worker.pid}"
    client.shutdown()


def test_sigterm_releases_leases_of_work_it_cannot_finish(backend_url: str,
                                                          tmp_path: Path) -> None:
    client = Engine(backend_url)
    run = client.start(w.slow_wf, str(tmp_path), 3.0)
    first = spawn_worker(backend_url, lease=60.0, drain_timeout=0.2)
    try:
        wait_for(lambda: any(tmp_path.glob("started-*")), timeout=60)
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    finally:
        stop(first)
    released_at = time.monotonic()
    second = spawn_worker(backend_url, lease=60.0)
    try:
        result = run.result(timeout=40)
    finally:
        stop(second)
    # Taken over at once: nowhere near the 60 s lease of the first worker.
    assert result == f"slept in {second.pid}"
    assert time.monotonic() - released_at < 30
    client.shutdown()
