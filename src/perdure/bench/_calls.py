"""Where a shape's time goes, by World call: ``python -m perdure.bench._calls``.

Runs one shape on a launched in-process engine with every World method wrapped to
count its calls and the wall time spent in them (on any thread), then prints, per
iteration and per step, each method's calls and milliseconds. On Postgres each
World call is one round trip and one transaction (autocommit), so the calls per
step are the round trips per step and most of ``xact_commit``.

    python -m perdure.bench._calls seq-50 --backend postgres --iterations 10

``--cpu`` (Linux, local server) also prints the CPU time per step of every
``postgres`` process and of this process (read from ``/proc``).

``--hot-path`` also times a few functions of a step's path in this process (the
step's attempt, the workflow's advance, the append's arguments and answer, the
pool's lending; Postgres) and prints microseconds per call.

``--server-functions`` (Postgres, superuser) also sets ``track_functions = all``
on the database and prints the server time of perdure's PL/pgSQL functions from
``pg_stat_user_functions`` (warm-up iterations included; times are per call).
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from perdure import Engine

from . import DEFAULT_SERVER, PERDURE_DATABASE, _shapes
from ._catalog import SHAPES
from ._measure import CommitCounter, cpu_seconds, database_name, fresh_database

METHODS = (
    "create_run", "create_runs", "create_run_claimed", "create_run_started", "append",
    "append_many", "create_event", "claim_with_logs",
    "get_run", "get_run_by_key",
    "list_runs", "list_events", "list_steps", "get_step", "list_waits", "list_hooks",
    "get_hook_by_token",
    "enqueue", "claim", "extend_leases", "ack", "release", "list_jobs", "find_stranded_runs",
    "write_chunks", "close_stream", "read_chunks", "stream_info", "list_streams",
    "register_workflows", "registered_workflows",
)


# (module, class or None for a module function, name): a step's path in this process
HOT_PATH = (
    ("perdure._worker", "Worker", "_attempt"),
    ("perdure._replay", "WorkflowInstance", "deliver"),
    ("perdure._activation", "Advancer", "_commit"),
    ("perdure.backends.postgres._eventlog", None, "append_call"),
    ("perdure.backends.postgres._eventlog", None, "append_params"),
    ("perdure.backends.postgres._eventlog", "EventLog", "_appended"),
    ("perdure.backends.postgres._db", "Database", "getconn"),
    ("perdure.backends.postgres._db", "Database", "putconn"),
    ("perdure.backends.postgres._db", "Database", "one"),
)


class CallLog:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.enabled = False

    def wrap(self, world: Any) -> None:
        for name in METHODS:
            fn = getattr(world, name, None)
            if fn is not None:
                setattr(world, name, self._wrapped(name, fn))

    def wrap_hot_path(self) -> None:
        """Time ``HOT_PATH`` too (patched on their classes and modules, for good)."""
        for module_name, cls_name, name in HOT_PATH:
            owner: Any = importlib.import_module(module_name)
            if cls_name is not None:
                owner = getattr(owner, cls_name)
            label = f"{cls_name or module_name.rsplit('.', 1)[-1]}.{name}"
            setattr(owner, name, self._wrapped(label, getattr(owner, name)))

    def _wrapped(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if not self.enabled:
                return fn(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t0
                with self.lock:
                    self.calls[name] += 1
                    self.seconds[name] += spent

        return call


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--server-functions", action="store_true")
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--hot-path", action="store_true")
    args = parser.parse_args(argv)
    shape = next((s for s in SHAPES if s.name == args.shape), None)
    if shape is None or shape.kind not in _shapes.DRIVERS:
        parser.error(f"unknown in-process shape {args.shape!r}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            url = f"sqlite:///{tmp}/calls.db"
        else:
            url = args.database_url or fresh_database(DEFAULT_SERVER, PERDURE_DATABASE)
            if args.server_functions:
                _track_functions(url)
        log = CallLog()
        if args.hot_path:
            log.wrap_hot_path()
        engine = Engine(url)
        log.wrap(engine.world)
        engine.launch()
        _shapes.bind_engine(engine)
        drive = _shapes.DRIVERS[shape.kind]
        try:
            for _ in range(max(shape.warmup, 2)):
                drive(engine, shape)
            log.enabled = True
            server0, own0 = cpu_seconds("postgres"), time.process_time()
            t0 = time.perf_counter()
            for _ in range(args.iterations):
                drive(engine, shape)
            wall = time.perf_counter() - t0
            server, own = cpu_seconds("postgres") - server0, time.process_time() - own0
            log.enabled = False
        finally:
            _shapes.bind_engine(None)
            engine.shutdown()
    n, steps = args.iterations, max(shape.steps, 1)
    print(f"{shape.name} on {args.backend}: {wall / n * 1000:.2f} ms per iteration "
          f"({steps} steps), {sum(log.calls.get(m, 0) for m in METHODS) / n:.1f} World calls "
          "per iteration")
    print(f"{'method':<28}{'calls/iter':>11}{'calls/step':>11}{'ms/iter':>10}{'ms/call':>9}")
    for name in sorted(log.calls, key=lambda k: -log.seconds[k]):
        calls, secs = log.calls[name], log.seconds[name]
        print(f"{name:<28}{calls / n:>11.2f}{calls / n / steps:>11.2f}"
              f"{secs / n * 1000:>10.2f}{secs / calls * 1000:>9.3f}")
    print("(World time is summed over threads: concurrent calls overlap)")
    if args.cpu:
        per = n * steps
        print(f"CPU per step: postgres processes {server / per * 1000:.3f} ms, "
              f"this process {own / per * 1000:.3f} ms")
    if args.server_functions and args.backend == "postgres":
        _print_functions(url)


def _track_functions(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database_name(url)}" SET track_functions = \'all\'')
        conn.execute("SELECT pg_stat_reset()")


def _print_functions(url: str) -> None:
    import psycopg

    CommitCounter(url).wait_backends_gone()
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || funcname, calls, total_time, self_time "
            "FROM pg_stat_user_functions ORDER BY total_time DESC").fetchall()
    print(f"\n{'server function':<36}{'calls':>8}{'total ms/call':>15}{'self ms/call':>14}")
    for name, calls, total, own in rows:
        print(f"{name:<36}{calls:>8}{total / calls:>15.3f}{own / calls:>14.3f}")


if __name__ == "__main__":
    main()
