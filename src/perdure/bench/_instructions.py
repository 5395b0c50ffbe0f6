"""Server instructions per step, counted by callgrind: ``python -m perdure.bench._instructions``.

Why: this machine's speed moves by 2x within minutes, so a change worth 5% of a
step's server time cannot be seen in milliseconds without many alternating
rounds. Instruction counts do not move with the machine: the same code and
inputs give the same count within 1 to 3% back to back, whatever else runs
(the level can move by a few percent across restarts of the server: compare
before and after side by side). Run that server with autovacuum off: its
workers' counts land in the measured window and moved the result by 10%.

The server runs under ``valgrind --tool=callgrind --trace-children=yes`` (every
backend is a forked child and writes its counts to ``--cg-dir`` when it exits).
A shape is run twice, each time with a fresh engine whose backends all exit at
its shutdown: ``--first`` then ``--second`` iterations. The counts of the two
runs' backends differ by the iterations in between, so the constant costs (the
backends' start, plans, caches) drop out. In-process shapes and
``throughput-1w`` / ``throughput-2w`` (worker processes, per run), and ``batch``::

    su postgres -c 'valgrind --tool=callgrind --trace-children=yes \\
        --callgrind-out-file=/tmp/cg/cg.%p postgres -D /tmp/pg5434' &
    python -m perdure.bench._instructions seq-50 \\
        --database-url postgresql://postgres@127.0.0.1:5434/perdure_bench

A throughput shape's count is not repeatable: under valgrind the server runs tens
of times slower, and how the runs batch (starts, claims, appends) follows the
timing (one code measured 1,388 and 2,104 k per run back to back). ``batch``
measures the batch paths in one thread instead: ten runs started together
(``create_runs``), claimed together, and given their first step together
(``append_many``), per run; the same code gives the same count. ``batch-whole``
appends each of the ten as a whole one-step run instead (started, its step
created, started and completed, the run completed: a throughput worker's batch).

The database is dropped and made anew (and migrated by the engine) first.
``--sql FILE`` is applied after the migrations: a variant of a function to
compare against the migrations' own, without editing them.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import time
from pathlib import Path

from perdure import Engine
from perdure.backends.postgres import PostgresWorld
from perdure.world import AppendRequest, CreateRequest, Job, NewEvent, NewJob, uuid7

from . import _shapes, _throughput
from ._catalog import SHAPES, Shape
from ._measure import CommitCounter, database_name, fresh_database, with_database

SETTLE = 2.0  # seconds for exiting backends to write their counts
BATCH = 10  # runs per iteration of ``batch`` and ``batch-whole``
BATCHES = ("batch", "batch-whole")


def backend_instructions(cg_dir: str, since: float) -> int:
    """Instructions of the processes whose callgrind files were written since then."""
    total = 0
    for name in glob.glob(os.path.join(cg_dir, "*")):
        if os.path.getmtime(name) < since:
            continue
        with open(name, errors="replace") as fh:
            for line in fh:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    return total


def _in_process(url: str, shape: Shape, iterations: int) -> None:
    engine = Engine(url)
    engine.launch()
    _shapes.bind_engine(engine)
    try:
        drive = _shapes.DRIVERS[shape.kind]
        for _ in range(iterations):
            drive(engine, shape)
    finally:
        _shapes.bind_engine(None)
        engine.shutdown()


def _workers(url: str, shape: Shape, runs: int) -> None:
    with _throughput.fleet(url, int(shape.params["workers"])) as client:
        _throughput._batch(client, runs)


def _batches(url: str, n: int, whole: bool) -> None:
    """``n`` batches of ``BATCH`` runs: started, claimed, then each given its first
    step (claimed by this worker) or, ``whole``, its whole life, as a busy client
    and worker batch them."""
    with PostgresWorld(url, listen=False) as world:
        for _ in range(n):
            world.create_runs([CreateRequest("bench_one", "[0]", uuid7())
                               for _ in range(BATCH)])
            jobs = world.claim("bench", limit=BATCH, lease_seconds=30)
            world.append_many(sorted((_request(job, whole) for job in jobs),
                                     key=lambda request: request.run_id))


def _request(job: Job, whole: bool) -> AppendRequest:
    """A claimed run's first step, or (``whole``) its whole life."""
    events = [NewEvent("run_started", None, {"seed": 1}),
              NewEvent("step_created", "s1", {"name": "bench_step", "args": [0]}),
              NewEvent("step_started", "s1", {"attempt": 1})]
    if whole:
        events += [NewEvent("step_completed", "s1", {"output": 0}),
                   NewEvent("run_completed", None, {"output": 0})]
        return AppendRequest(job.run_id, events, ack=[job.id], consumed=True,
                             close_streams=True)
    return AppendRequest(job.run_id, events, ack=[job.id],
                         jobs=[NewJob("step", job.run_id, "s1", claimed_by="bench")])


def counted(url: str, shape: Shape | str, n: int, cg_dir: str) -> int:
    """Server instructions of one engine's life doing ``n`` iterations (runs);
    ``shape`` "batch" or "batch-whole": ``n`` batches."""
    since = time.time()
    if isinstance(shape, str):
        _batches(url, n, whole=shape == "batch-whole")
    elif shape.kind == "throughput":
        _workers(url, shape, n)
    else:
        _in_process(url, shape, n)
    CommitCounter(url).wait_backends_gone()
    time.sleep(SETTLE)  # a backend writes its counts as it exits, after leaving the server's lists
    return backend_instructions(cg_dir, since)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("shape")
    parser.add_argument("--database-url", required=True,
                        help="the server under callgrind, database to (re)make")
    parser.add_argument("--cg-dir", default="/tmp/cg")
    parser.add_argument("--first", type=int, default=None,
                        help="iterations of the first run (default 2; throughput: 100 runs)")
    parser.add_argument("--second", type=int, default=None,
                        help="iterations of the second (default 14; throughput: 400 runs)")
    parser.add_argument("--sql", type=Path, default=None)
    args = parser.parse_args(argv)
    shape = next((s for s in SHAPES if s.name == args.shape), None)
    if args.shape not in BATCHES and (
            shape is None or (shape.kind != "throughput" and shape.kind not in _shapes.DRIVERS)):
        parser.error(f"unknown shape {args.shape!r}")
    many = shape is not None and shape.kind == "throughput"
    first = args.first or (100 if many else 2)
    second = args.second or (400 if many else 14)
    if second <= first:
        parser.error("--second must be more than --first")
    url = fresh_database(with_database(args.database_url, "postgres"),
                         database_name(args.database_url))
    with PostgresWorld(url, listen=False) as world:
        world.migrate()
    if args.sql is not None:
        subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(args.sql)],
                       check=True, stdout=subprocess.DEVNULL)
    what = shape if shape is not None else args.shape
    counted(url, what, 1, args.cg_dir)  # warm the server's files and caches
    a = counted(url, what, first, args.cg_dir)
    b = counted(url, what, second, args.cg_dir)
    if shape is None:
        unit, per_iteration = "run", BATCH
    else:
        unit, per_iteration = ("run", 1) if many else ("step", max(shape.steps, 1))
    per = (b - a) / (second - first) / per_iteration
    print(f"{args.shape}: {per / 1000:.1f} k server instructions per {unit} "
          f"({first} and {second} iterations: {a / 1e6:.1f} and {b / 1e6:.1f} M)")


if __name__ == "__main__":
    main()
