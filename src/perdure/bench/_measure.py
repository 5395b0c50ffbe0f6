"""Timing statistics and Postgres commit counting, shared by both sides of the bench.

Standard library plus psycopg only (imported lazily): the DBOS side imports this
file as a sibling module from the benchmark virtualenv.

Commits come from ``pg_stat_database.xact_commit`` of the benchmarked database,
read over a connection to *another* database so the reads never count. Postgres
15 flushes a backend's counters at most once a second and, when the backend then
goes idle, only after ten more seconds. So before each read the bench waits a
second and has every idle pooled connection run one rolled-back ``SELECT 1``: a
transaction's end flushes the backend's pending counters at once, and a rollback
adds no commit (a pool's own pre-ping on checkout does; those are subtracted).
The counters of worker processes are settled instead by stopping the processes
(a backend flushes on exit).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

FLUSH_INTERVAL = 1.05  # Postgres 15's PGSTAT_MIN_INTERVAL is 1 s
# A shape's warm-up lasts at least this long (and ``Shape.warmup`` iterations). On
# the machines this bench ran on, the disk's flush took 0.65 to 1.2 ms instead of
# 0.2 for the first 20 to 100 commits after 1 to 2 s without any (a plain INSERT
# from psycopg); a couple of iterations of a short shape left it cold.
WARM_SECONDS = 0.3
WARM_MAX_ITERATIONS = 500


@dataclass
class Result:
    """One shape measured on one system; plain data, JSON both ways."""

    system: str                  # "perdure-postgres", "perdure-sqlite", "dbos"
    shape: str
    kind: str
    steps: int                   # steps per iteration
    iterations: int = 0          # timed iterations
    samples: list[float] = field(default_factory=list)  # milliseconds
    commits: int | None = None   # xact_commit delta (Postgres)
    commit_runs: int = 0         # the runs those commits cover
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(**data)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def warm_up(once: Callable[[], object], iterations: int, budget: float) -> int:
    """Run ``once`` ``iterations`` times and on until ``WARM_SECONDS`` (at most the
    shape's time ``budget``: none in a quick run) have passed; not at all when
    ``iterations`` is 0 (shapes that long warm themselves). Returns how many times
    it ran. Between this and the timed loop nothing may sleep, or the disk is cold
    again."""
    if iterations <= 0:
        return 0
    seconds = min(WARM_SECONDS, budget)
    began = time.monotonic()
    done = 0
    while done < iterations or (time.monotonic() - began < seconds
                                and done < WARM_MAX_ITERATIONS):
        once()
        done += 1
    return done


def timed_rounds(batch: Callable[[], object], rounds: int) -> list[float]:
    """Seconds of each of ``rounds`` (at least one) calls of ``batch``: a throughput
    shape's rounds, perdure's and DBOS's alike, so one slow second of the machine
    does not make the figure."""
    seconds = []
    for _ in range(max(1, rounds)):
        t0 = time.perf_counter()
        batch()
        seconds.append(time.perf_counter() - t0)
    return seconds


def timed_loop(once: Callable[[], float | list[float]], *, iterations: int,
               min_iterations: int, budget: float) -> tuple[list[float], int]:
    """Run ``once`` (which returns milliseconds, or a list of them) at least
    ``min_iterations`` and at most ``iterations`` times while the time ``budget``
    (seconds) lasts. Returns every sample and the number of iterations."""
    samples: list[float] = []
    began = time.monotonic()
    done = 0
    for i in range(max(iterations, min_iterations)):
        if i >= min_iterations and time.monotonic() - began > budget:
            break
        value = once()
        samples.extend(value if isinstance(value, list) else [value])
        done += 1
    return samples, done


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def database_name(url: str) -> str:
    return urllib.parse.urlsplit(url).path.lstrip("/")


def fresh_database(server_url: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``server_url``; its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


class CommitCounter:
    """Reads ``xact_commit`` of one database from a connection to another one."""

    def __init__(self, url: str, observer_db: str = "postgres") -> None:
        self.database = database_name(url)
        self.observer_url = with_database(url, observer_db)

    def read(self) -> int:
        import psycopg

        with psycopg.connect(self.observer_url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                               (self.database,)).fetchone()
        return int(row[0]) if row else 0

    def settled(self, flush: Callable[[], int]) -> int:
        """The counter after letting every backend flush; ``flush()`` makes the idle
        pooled connections end one transaction each and returns the commits that added."""
        time.sleep(FLUSH_INTERVAL)
        probes = flush()
        return self.read() - probes

    def wait_backends_gone(self, timeout: float = 10.0, keep: int = 0) -> None:
        """Wait until at most ``keep`` sessions remain on the database (they flushed
        their counters on exit)."""
        import psycopg

        deadline = time.monotonic() + timeout
        with psycopg.connect(self.observer_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND backend_type = 'client backend'", (self.database,)).fetchone()
                if row is not None and int(row[0]) <= keep:
                    break
                time.sleep(0.05)
        time.sleep(0.1)


def touch_psycopg_pool(pool: Any) -> int:
    """Borrow every idle connection of a psycopg_pool pool and end one transaction on
    each (rolled back, so it adds no commit), which flushes that backend's counters.
    Returns the commits added: none."""
    conns = []
    try:
        for _ in range(int(getattr(pool, "max_size", 10))):
            try:
                conns.append(pool.getconn(timeout=0.05))
            except Exception:  # noqa: BLE001 - PoolTimeout: the rest are busy
                break
        for conn in conns:
            if conn.autocommit:
                conn.execute("BEGIN")
            conn.execute("SELECT 1")
            if conn.autocommit:
                conn.execute("ROLLBACK")
            else:
                conn.rollback()
    finally:
        for conn in conns:
            pool.putconn(conn)
    return 0


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def perdure_revision() -> str | None:
    """The git commit perdure was loaded from (read-only ``git rev-parse``), if any."""
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def postgres_settings(url: str) -> dict[str, str]:
    import psycopg

    names = ("server_version", "fsync", "synchronous_commit", "shared_buffers", "wal_level",
             "full_page_writes", "max_connections")
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT name, current_setting(name) FROM pg_settings "
                            "WHERE name = ANY(%s)", (list(names),)).fetchall()
    return {str(k): str(v) for k, v in rows}


def cpu_reference(rounds: int = 7) -> float:
    """Median milliseconds of a fixed piece of pure Python (JSON in and out of a small
    document, 2,000 times): the machine's CPU speed at this moment. This bench's
    machines moved by a third within a session; with the floor, this tells a slower
    run from slower code."""
    import json

    doc = {"run": "01a2505c-1396-713c-8270-5116814a61d4", "seq": 7, "data": list(range(20)),
           "name": "bench_noop", "attempt": 1}
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(2000):
            json.loads(json.dumps(doc))
        times.append((time.perf_counter() - t0) * 1000.0)
    return median(times)


def commit_floor(url: str, n: int = 300) -> float:
    """Median milliseconds of one single-row INSERT + COMMIT from psycopg: the floor
    of a commit on this server at this moment (the issue's 0.19 ms reference)."""
    import psycopg

    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS perdure_bench_floor")
        conn.execute("CREATE TABLE perdure_bench_floor (id int, v text)")  # logged: WAL
        try:
            for i in range(n):
                t0 = time.perf_counter()
                conn.execute("INSERT INTO perdure_bench_floor VALUES (%s, 'x')", (i,))
                samples.append((time.perf_counter() - t0) * 1000.0)
        finally:
            conn.execute("DROP TABLE perdure_bench_floor")
    return median(samples)


def settle(url: str) -> None:
    """A CHECKPOINT before each system measures a shape, so none of them pays for
    writing out what the one before left dirty (DBOS's 1,000 commits of a streams
    shape made the SQLite measurement after it 1.5 to 2x slower than alone). Needs
    a superuser; without one, the measurements simply go on unsettled."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        pass


def process_cpu(pid: int | str) -> float:
    """User + system CPU seconds of one process so far (Linux ``/proc``; 0.0 when
    it is gone or there is no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def cpu_seconds(command_prefix: str) -> float:
    """CPU seconds of the processes whose command line starts with
    ``command_prefix``. For a local PostgreSQL, ``"postgres"`` covers the
    postmaster, its backends and background processes."""
    prefix = command_prefix.encode()
    total = 0.0
    with contextlib.suppress(FileNotFoundError):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if not f.read().startswith(prefix):
                        continue
            except OSError:  # the process ended meanwhile
                continue
            total += process_cpu(pid)
    return total
