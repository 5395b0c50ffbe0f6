"""Running the shapes on perdure: one launched in-process ``Engine`` per backend
for the single-process shapes, ``perdure worker`` processes for throughput.

Per shape: warm-up iterations (untimed), then timed iterations until
``iterations`` or the time budget (at least the shape's minimum), each one start to
result. On Postgres the ``xact_commit`` delta of the timed iterations alone is
recorded (settled before and after, see ``_measure``).
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from perdure import Engine

from . import _shapes, _throughput
from ._catalog import PROCESS_KINDS, Shape
from ._measure import CommitCounter, Result, timed_loop, touch_psycopg_pool, warm_up

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Plan:
    iterations: int = 20     # at most, per shape
    budget: float = 3.0      # seconds of timed iterations per shape, after the minimum
    quick: bool = False


def system_name(url: str) -> str:
    return "perdure-sqlite" if url.startswith("sqlite:") else "perdure-postgres"


class PerdureSide:
    """One backend: a launched in-process engine for the single-process shapes,
    ``perdure worker`` processes for the throughput shapes. The in-process engine is
    shut down while a throughput shape runs (its worker would take a share of the
    runs that the worker processes are measured on) and launched again after."""

    def __init__(self, url: str, plan: Plan) -> None:
        self.url = url
        self.plan = plan
        self.system = system_name(url)
        self.counter = CommitCounter(url) if self.system == "perdure-postgres" else None
        self._engine: Engine | None = None
        self._launched()

    def _launched(self) -> Engine:
        if self._engine is None:
            self._engine = Engine(self.url).launch()
            # Let the worker's start-up recovery sweep finish before anything is counted.
            self._engine.start(_shapes.bench_seq, 0).result(timeout=_shapes.RESULT_TIMEOUT)
            time.sleep(1.0)
        return self._engine

    def measure(self, shape: Shape) -> Result:
        if shape.kind in PROCESS_KINDS:
            self.close()
            return _throughput.run(self.url, self.system, shape, self.counter)
        engine = self._launched()
        _shapes.bind_engine(engine)
        try:
            return _measure(engine, self.system, shape, self.plan, self.counter)
        finally:
            _shapes.bind_engine(None)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None


def _measure(engine: Engine, system: str, shape: Shape, plan: Plan,
             counter: CommitCounter | None) -> Result:
    result = Result(system, shape.name, shape.kind, shape.steps)
    if "bytes" in shape.params:
        result.extra["bytes"] = shape.params["bytes"]
    drive = _shapes.DRIVERS[shape.kind]

    def once() -> float | list[float]:
        return drive(engine, shape)

    try:
        # Counted from before the warm-up (whose runs are the same runs): the
        # counter's settling sleeps, and the timed loop must follow the warm-up at once.
        before = counter.settled(lambda: _flush(engine)) if counter else None
        warm = warm_up(once, shape.warmup, plan.budget)
        samples, done = timed_loop(once, iterations=plan.iterations,
                                   min_iterations=shape.min_iterations, budget=plan.budget)
        if counter is not None and before is not None:
            result.commits = counter.settled(lambda: _flush(engine)) - before
            result.commit_runs = warm + done
        result.samples, result.iterations = samples, done
    except Exception as exc:  # noqa: BLE001 - report it and go on with the next shape
        logger.debug("shape %s failed", shape.name, exc_info=True)
        result.error = f"{type(exc).__name__}: {exc}"
        result.extra["traceback"] = traceback.format_exc()
    return result


def _flush(engine: Engine) -> int:
    """Make the engine's idle pooled connections, and its LISTEN connection, flush
    their statistics."""
    db: Any = getattr(engine.world, "_db", None)
    pool: Any = getattr(db, "pool", None)
    if hasattr(db, "cool"):
        db.cool()  # the connections it keeps hot go back to the pool, to be touched too
    if pool is None:  # another pool layout: wait out Postgres' idle flush delay
        time.sleep(10.5)
        return 0
    _touch_listener(engine)
    return touch_psycopg_pool(pool)


def _touch_listener(engine: Engine) -> None:
    """The LISTEN connection's commits (one per NOTIFY read) are flushed only when
    it next runs a statement, its own ping every 10 s: they landed in whichever shape
    came next (seq-1 after no-step: 5.2 commits per run instead of 3.0)."""
    listener: Any = getattr(engine.world, "listener", None)
    if listener is not None:
        listener.ping()


def progress_line(r: Result) -> str:
    if r.error:
        return f"  {r.system:<17} {r.shape:<20} FAILED {r.error}"
    from ._measure import median

    extra = ""
    if r.commits is not None and r.commit_runs:
        extra = f"  {r.commits / r.commit_runs:.1f} commits/run"
    return (f"  {r.system:<17} {r.shape:<20} {r.iterations:>3} iter  "
            f"median {median(r.samples):9.2f} ms{extra}")
