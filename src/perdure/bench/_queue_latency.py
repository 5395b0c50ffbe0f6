"""Latency of queued runs at a steady rate: ``python -m perdure.bench._queue_latency``.

Why: the throughput shapes measure a queue flooded as fast as a client can start
runs; a worker setting that helps there (``claim_cooldown``: fewer, larger claims)
may cost latency when the queue is busy but not flooded. This program starts
one-step runs from a client ``Engine`` at a fixed rate, executed by ``perdure
worker`` processes started with each ``--claim-cooldown`` asked for in turn, and
prints the start-to-result percentiles of each round::

    python -m perdure.bench._queue_latency --workers 1 --rate 400 --runs 1000 \\
        --claim-cooldown 0 --claim-cooldown 0.01 --rounds 2

Each start is timed from just before ``Engine.start`` to its ``result()``; a late
start (the client fell behind the rate) still counts from its own start.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from perdure import Run

from . import _shapes, _throughput
from ._measure import percentile

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/perdure_bench"
WAITERS = 64  # threads waiting on results


@dataclass
class Round:
    workers: int
    rate: float
    cooldown: float
    latencies_ms: list[float]


def measure(url: str, workers: int, rate: float, runs: int, cooldown: float) -> Round:
    """One round: fresh worker processes with ``cooldown``, ``runs`` starts at ``rate``
    per second (after a warm-up batch), every result awaited."""
    latencies: list[float] = []

    def wait(run: Run, began: float) -> None:
        run.result(timeout=_shapes.RESULT_TIMEOUT)
        latencies.append((time.perf_counter() - began) * 1000.0)  # one append: thread-safe

    options = ["--claim-cooldown", str(cooldown)]
    with _throughput.fleet(url, workers, options) as client, \
            ThreadPoolExecutor(WAITERS) as pool:
        _throughput._batch(client, _throughput.WARMUP_PER_WORKER * workers)
        t0 = time.perf_counter()
        futures = []
        for i in range(runs):
            ahead = t0 + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)  # the schedule of starts, not a synchronization
            began = time.perf_counter()
            futures.append(pool.submit(wait, client.start(_shapes.bench_one, i), began))
        for future in futures:
            future.result()
    return Round(workers, rate, cooldown, latencies)


def table(rounds: list[Round]) -> str:
    lines = ["| workers | rate /s | claim cooldown s | runs | p50 ms | p90 ms | p99 ms |",
             "|---|---|---|---|---|---|---|"]
    for r in rounds:
        p50, p90, p99 = (percentile(r.latencies_ms, q) for q in (50, 90, 99))
        lines.append(f"| {r.workers} | {r.rate:g} | {r.cooldown:g} | {len(r.latencies_ms)} "
                     f"| {p50:.2f} | {p90:.2f} | {p99:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("PERDURE_BENCH_URL",
                                                                 DEFAULT_URL))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=400.0, help="starts per second")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--claim-cooldown", type=float, action="append", dest="cooldowns",
                        help="seconds; give it several times to compare (default 0 and 0.01)")
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the cooldowns")
    args = parser.parse_args(argv)
    cooldowns = args.cooldowns or [0.0, 0.01]
    rounds = [measure(args.database_url, args.workers, args.rate, args.runs, c)
              for _ in range(args.rounds) for c in cooldowns]
    print(table(rounds))


if __name__ == "__main__":
    main()
