"""Throughput: N one-step workflows executed by 1 or 2 ``perdure worker`` processes.

The workers (``perdure worker perdure.bench._shapes``) start first and are warmed
up with a small batch. Then this process, a client ``Engine`` that executes
nothing, starts the N runs from ``STARTERS`` threads and waits for every result; the
time from the first start to the last result gives workflows per second.

Only these processes work on the runs: the bench's own in-process engine is shut
down while a throughput shape runs (``_runner.PerdureSide``). Commits (Postgres)
are counted from before the workers start to after they and the client have
exited (a backend flushes its statistics on exit), so they include the warm-up
batch and the workers' start and stop; ``commit_runs`` says how many runs that is.
The N runs are started ``min_iterations`` times (rounds) on the same workers;
workflows/s is N over the median round.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from perdure import Engine

from . import _shapes
from ._catalog import STARTERS, Shape
from ._measure import CommitCounter, Result, cpu_seconds, process_cpu, timed_rounds

WARMUP_PER_WORKER = 25
READY_TIMEOUT = 60.0


def run(url: str, system: str, shape: Shape, counter: CommitCounter | None) -> Result:
    result = Result(system, shape.name, shape.kind, 1)
    workers = int(shape.params["workers"])
    before = None if counter is None else counter.settled(_no_probes)
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    client = Engine(url)
    try:
        for _ in range(workers):
            procs.append(_spawn(url))
        for proc, log in procs:
            _wait_ready(proc, log)
        warm = WARMUP_PER_WORKER * workers
        _batch(client, warm)
        cpu0 = _cpu(procs)
        rounds = timed_rounds(lambda: _batch(client, shape.n), shape.min_iterations)
        runs = shape.n * len(rounds)
        result.extra.update({k: (v - cpu0[k]) / runs * 1000.0
                             for k, v in _cpu(procs).items()})
        result.samples = [elapsed * 1000.0 for elapsed in rounds]
        result.iterations = len(rounds)
        result.extra["workflows_per_s"] = shape.n / statistics.median(rounds)
        result.extra["workers"] = workers
        result.commit_runs = runs + warm
    except Exception as exc:  # noqa: BLE001 - report it, the other shapes go on
        result.error = f"{type(exc).__name__}: {exc}"
        for _, log in procs:
            result.extra.setdefault("worker_log", log.read_text(errors="replace")[-2000:])
    finally:
        _stop(procs)
        client.shutdown()
    if counter is not None and before is not None and not result.error:
        counter.wait_backends_gone()  # the backends flush their statistics as they exit
        result.commits = counter.settled(_no_probes) - before
    return result


def _no_probes() -> int:
    """No idle connection of this process to flush: every session has exited."""
    return 0


def _cpu(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> dict[str, float]:
    """CPU seconds so far: local postgres processes, the workers, this client (Linux;
    the extra fields are CPU ms per run)."""
    workers = sum(process_cpu(p.pid) for p, _ in procs)
    return {"cpu_ms_postgres": cpu_seconds("postgres"), "cpu_ms_workers": workers,
            "cpu_ms_client": time.process_time()}


def _batch(client: Engine, n: int) -> None:
    with ThreadPoolExecutor(STARTERS) as pool:
        runs = list(pool.map(lambda i: client.start(_shapes.bench_one, i), range(n)))
    for index, run in enumerate(runs):
        value = run.result(timeout=_shapes.RESULT_TIMEOUT)
        if value != index:
            raise AssertionError(f"run {run.id} returned {value!r}, expected {index}")


@contextmanager
def fleet(url: str, workers: int, options: list[str] | None = None) -> Iterator[Engine]:
    """``workers`` ready ``perdure worker`` processes (with ``options``) and a client
    Engine that executes nothing; all stopped on exit. For the programs that drive
    workers without this shape's bookkeeping (``_instructions``, ``_queue_latency``)."""
    procs = [_spawn(url, options) for _ in range(workers)]
    client = Engine(url)
    try:
        for proc, log in procs:
            _wait_ready(proc, log)
        yield client
    finally:
        _stop(procs)
        client.shutdown()


def _spawn(url: str, options: list[str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """A ``perdure worker`` process with ``options`` (its defaults when None)."""
    fd, name = tempfile.mkstemp(prefix="perdure-bench-worker-", suffix=".log")
    os.close(fd)
    log = Path(name)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "perdure.cli", "--database-url", url, "worker",
             "perdure.bench._shapes", *(options or [])],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    return proc, log


def _wait_ready(proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if "running" in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    raise TimeoutError("worker did not start")


def _stop(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    for proc, _ in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, log in procs:
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)
