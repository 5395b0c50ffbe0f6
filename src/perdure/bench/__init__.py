"""``perdure bench``: the benchmark program of issue 7.

Runs a fixed list of workflow shapes (``_catalog``) on perdure's backends, each
start to result on a launched in-process engine (throughput: ``perdure worker``
processes), optionally the same shapes on DBOS in a benchmark-only virtualenv, and
prints Markdown tables (median, p95, ms per step, commits per step on Postgres,
the ratio DBOS/perdure), the issue's targets, a chart and a JSON file.

Modules: ``_catalog`` (the shapes, as data), ``_measure`` (statistics, commit
counting), ``_shapes`` (perdure's workflows and drivers), ``_runner`` and
``_throughput`` (perdure), ``_dbos`` and ``_dbos_program`` (DBOS), ``_report``.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._catalog import SHAPES, Shape, select
from ._measure import (
    Result,
    commit_floor,
    cpu_reference,
    fresh_database,
    machine,
    perdure_revision,
    postgres_settings,
    settle,
    with_database,
)
from ._report import Report
from ._runner import PerdureSide, Plan, progress_line

__all__ = ["DEFAULT_SERVER", "SHAPES", "BenchOptions", "Report", "Shape", "run"]

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PERDURE_DATABASE = "perdure_bench"


@dataclass
class BenchOptions:
    backend: str = "both"                  # sqlite | postgres | both
    database_url: str | None = None        # Postgres; default: fresh perdure_bench locally
    iterations: int = 20
    budget: float = 3.0
    quick: bool = False
    shapes: str | None = None
    compare: str | None = None             # "dbos"
    chart: Path | None = None
    json_path: Path | None = None
    bench_venv: Path = Path(".bench-venv")


def _echo(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(options: BenchOptions, progress: Callable[[str], None] = _echo) -> Report:
    """Measure the selected shapes on every selected system, side by side: shape by
    shape, each system in turn (perdure on Postgres, DBOS, perdure on SQLite), so a
    change in the machine's load hits all of them alike."""
    shapes = select(options.shapes, quick=options.quick)
    plan = Plan(iterations=2 if options.quick else options.iterations,
                budget=0.0 if options.quick else options.budget, quick=options.quick)
    backends = ["postgres", "sqlite"] if options.backend == "both" else [options.backend]
    meta: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "perdure_revision": perdure_revision(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "shapes": [s.name for s in shapes],
        "cpu_reference_ms": [cpu_reference()],
    }
    results: list[Result] = []
    pg_url: str | None = None
    if "postgres" in backends or options.compare:
        pg_url = options.database_url or fresh_database(DEFAULT_SERVER, PERDURE_DATABASE)
        meta["postgres"] = postgres_settings(pg_url)
        meta["commit_floor_ms"] = [commit_floor(pg_url)]
    with tempfile.TemporaryDirectory(prefix="perdure-bench-") as tmp:
        sides: list[Any] = []
        try:
            if "postgres" in backends:
                assert pg_url is not None
                progress(f"perdure on Postgres: {pg_url}")
                sides.append(PerdureSide(pg_url, plan))
            if options.compare == "dbos":
                from ._dbos import DATABASE, DbosSide

                assert pg_url is not None
                progress(f"DBOS on Postgres: {with_database(pg_url, DATABASE)}")
                sides.append(DbosSide(pg_url, {"iterations": plan.iterations,
                                               "budget": plan.budget},
                                      options.bench_venv, progress))
            if "sqlite" in backends:
                url = f"sqlite:///{tmp}/bench.db"
                progress(f"perdure on SQLite: {url}")
                sides.append(PerdureSide(url, plan))
            for shape in shapes:
                now = machine_now(pg_url, quick=options.quick)
                for side in sides:
                    if pg_url is not None:
                        settle(pg_url)
                    result = side.measure(shape)
                    result.extra["machine"] = now
                    progress(progress_line(result))
                    results.append(result)
        finally:
            for side in sides:
                closed = side.close()
                if isinstance(closed, dict):
                    meta.update(closed)
    meta["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    meta["loadavg_end"] = machine().get("loadavg")
    meta["cpu_reference_ms"].append(cpu_reference())
    if pg_url is not None:
        meta["commit_floor_ms"].append(commit_floor(pg_url))
    return Report(results, meta)


def machine_now(pg_url: str | None, quick: bool = False) -> dict[str, float | None]:
    """The floor and the CPU reference right before a shape, short versions (about
    50 ms): the machine's speed moves by 2x within minutes, and a shape's numbers
    are read against the machine they were measured on. (The floor's commits land
    before the shape's commit count starts, which waits for the counters to settle.)"""
    floor = None
    if pg_url is not None:
        floor = commit_floor(pg_url, n=10 if quick else 50)
    return {"floor_ms": floor, "cpu_reference_ms": cpu_reference(rounds=1 if quick else 3)}
