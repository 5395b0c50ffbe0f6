"""Where a live chunk's time goes: ``python -m perdure.bench._stream_timeline``.

Runs the ``stream-latency`` shape once (a step writes ``--chunks`` small chunks,
``--gap`` seconds apart, each read by a live reader in the same process) with
``World.write_chunks`` and ``World.read_chunks`` timed, and prints the median of
each leg of a chunk's way: from ``write`` to its flush starting, the flush (the
commit), from the commit to the reader's delivery. A reader that queries the
table after a wake-up shows it in the reads counted; one that takes the chunks
handed over with the wake-up reads nothing back.

    python -m perdure.bench._stream_timeline --backend postgres
"""

from __future__ import annotations

import argparse
import bisect
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from perdure import Engine

from . import DEFAULT_SERVER, PERDURE_DATABASE, _shapes
from ._measure import fresh_database, percentile


class Timed:
    """Start and end of every call of one World method (on any thread)."""

    def __init__(self, world: Any, name: str) -> None:
        self.spans: list[tuple[float, float, int]] = []  # start, end, items returned
        self._lock = threading.Lock()
        fn: Callable[..., Any] = getattr(world, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            span = (t0, time.perf_counter(), len(result) if isinstance(result, list) else 1)
            with self._lock:
                self.spans.append(span)
            return result

        setattr(world, name, timed)

    def first_starting_after(self, t: float) -> tuple[float, float, int] | None:
        with self._lock:
            spans = sorted(self.spans)
        i = bisect.bisect_left(spans, (t, 0.0, 0))
        return spans[i] if i < len(spans) else None


def timeline(engine: Engine, chunks: int, gap: float) -> dict[str, list[float]]:
    """Milliseconds per leg for each chunk (the first few skipped: the reader may
    not be live yet), plus the reader's query counts."""
    writes = Timed(engine.world, "write_chunks")
    reads = Timed(engine.world, "read_chunks")
    run = engine.start(_shapes.bench_latency, chunks, gap)
    delivered = [(chunk["t"], time.perf_counter()) for chunk in run.stream()]
    run.result(timeout=_shapes.RESULT_TIMEOUT)
    legs: dict[str, list[float]] = {"write to flush": [], "flush (commit)": [],
                                    "commit to delivery": [], "write to delivery": []}
    for stamped, got in delivered[5:]:
        flush = writes.first_starting_after(stamped)
        if flush is None or flush[1] > got:
            continue
        legs["write to flush"].append((flush[0] - stamped) * 1000)
        legs["flush (commit)"].append((flush[1] - flush[0]) * 1000)
        legs["commit to delivery"].append((got - flush[1]) * 1000)
        legs["write to delivery"].append((got - stamped) * 1000)
    legs["reads with chunks"] = [float(sum(1 for s in reads.spans if s[2]))]
    legs["reads without"] = [float(sum(1 for s in reads.spans if not s[2]))]
    return legs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.002)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            url = f"sqlite:///{tmp}/timeline.db"
        else:
            url = args.database_url or fresh_database(DEFAULT_SERVER, PERDURE_DATABASE)
        engine = Engine(url)
        engine.launch()
        try:
            legs = timeline(engine, args.chunks, args.gap)
        finally:
            engine.shutdown()
    print(f"stream-latency on {args.backend}: {args.chunks} chunks, {args.gap * 1000:g} ms apart")
    print(f"{'leg':<22}{'median ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name, values in legs.items():
        if name.startswith("reads"):
            print(f"{name:<22}{values[0]:>10.0f}")
        elif values:
            print(f"{name:<22}{statistics.median(values):>10.3f}{percentile(values, 99):>10.3f}"
                  f"{max(values):>10.3f}")


if __name__ == "__main__":
    main()
