"""The chaos program: a throwaway cluster, a fleet of workers, faults, load, checks.

1. ``initdb`` a throwaway PostgreSQL cluster (never the shared server) and create
   the database ``chaos`` with perdure's schema and the application's table;
2. start ``workers`` ``perdure worker`` processes on :mod:`perdure.chaos.workload`;
3. start the faults (:mod:`._faults`) and the load (:mod:`._load`) together; the
   faults go on until the last run has ended;
4. stop the faults, let the queue drain, check everything (:mod:`._checks`), count
   the connections, stop the workers (SIGTERM) and count again;
5. print the summary; the exit status is 0 only when every check passed and the
   mode's minimums (runs, kills, drops, restarts) were met.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from .._engine import Engine
from ..backends.postgres import PostgresWorld
from ..backends.postgres._listener import APPLICATION_NAME as LISTENER_NAME
from ..testing._postgres import PostgresServer, create_database, start_throwaway_cluster
from . import workload
from ._checks import (
    CONNECTIONS,
    CORRUPTED,
    DUPLICATED,
    EXCESS,
    JOBS,
    LOST,
    READER,
    WORKERS,
    CheckResult,
    check_jobs,
    check_runs,
    dump_run,
    wait_for_no_jobs,
)
from ._faults import ADMIN_NAME, POOL_NAME, FaultInjector
from ._fleet import Fleet
from ._load import CLIENT_NAME, LoadDriver

logger = logging.getLogger(__name__)

DATABASE = "chaos"
CHECK_NAME = "perdure-chaos-check"


@dataclass
class ChaosConfig:
    mode: str = "short"
    runs: int = 200                  # at least this many runs are started ...
    duration: float = 75.0           # ... and runs are started for at least this long
    workers: int = 3
    seed: int = 0
    inflight: int = 32               # runs driven at once
    worker_concurrency: int = 8
    lease: float = 5.0
    poll_interval: float = 0.5
    kill_interval: float = 2.0
    drop_interval: float = 1.0
    pooled_per_round: int = 2
    restart_at: float = 30.0         # seconds into the faults
    run_timeout: float = 300.0
    min_kills: int = 20
    min_drops: int = 50
    min_restarts: int = 1
    keep: bool = False
    folder: str | None = None

    @classmethod
    def for_mode(cls, mode: str, **overrides: Any) -> ChaosConfig:
        base: dict[str, Any] = {"mode": mode}
        if mode == "long":
            base.update(runs=2000, duration=600.0, restart_at=240.0, min_kills=150,
                        min_drops=500, run_timeout=600.0)
        base.update({k: v for k, v in overrides.items() if v is not None})
        if "seed" not in base:
            base["seed"] = random.SystemRandom().randrange(1, 1_000_000)
        cfg = cls(**base)
        cfg.restart_at = min(cfg.restart_at, cfg.duration * 0.6)
        return cfg

    @property
    def min_runs(self) -> int:
        return self.runs


@dataclass
class Summary:
    mode: str
    seed: int
    workers: int
    runs: int = 0
    runs_completed: int = 0
    steps: int = 0
    step_attempts: int = 0
    planned_retries: int = 0
    side_effects: int = 0
    events: int = 0
    chunks_read: int = 0
    kills: int = 0
    connection_drops: int = 0
    listener_drops: int = 0
    pool_drops: int = 0
    restarts: int = 0
    restart_seconds: float = 0.0
    fault_seconds: float = 0.0
    total_seconds: float = 0.0
    client_retries: int = 0
    latency_p50: float = 0.0
    latency_p99: float = 0.0
    replayed: int = 0
    lost: int = 0
    duplicated: int = 0
    corrupted: int = 0
    excess_side_effects: int = 0
    reader_errors: int = 0
    jobs_left: int = 0
    leaked_connections: int = 0
    worker_crashes: int = 0
    connections_up: dict[str, int] = field(default_factory=dict)
    connections_after: dict[str, int] = field(default_factory=dict)
    unmet: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    folder: str = ""
    dumps: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings and not self.unmet

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}


# == connections ===================================================================
def census(url: str) -> dict[str, int]:
    """Backends connected to the chaos database, by application_name (ours excluded)."""
    with psycopg.connect(url, autocommit=True, application_name=CHECK_NAME,
                         connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT coalesce(application_name, ''), count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            "   AND backend_type = 'client backend' GROUP BY 1 ORDER BY 1").fetchall()
    return {name: int(n) for name, n in rows}


def connection_limits(processes: int, workers: int, concurrency: int) -> dict[str, int]:
    """What may be connected while ``processes`` Engines (``workers`` of them worker
    processes) are up: per Engine one listener and at most a full pool; per worker,
    the workload's own connections (one per step thread, one lock per stream step)."""
    pool = int(inspect.signature(PostgresWorld).parameters["max_connections"].default)
    return {LISTENER_NAME: processes, POOL_NAME: pool * processes,
            workload.APP_NAME: 2 * (concurrency + 1) * workers}


def _settle(url: str, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        found = {k: v for k, v in census(url).items() if k not in (CHECK_NAME, ADMIN_NAME)}
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


# == the program ===================================================================
class ChaosRun:
    def __init__(self, cfg: ChaosConfig, echo: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.echo = echo
        self.folder = Path(cfg.folder or tempfile.mkdtemp(prefix="perdure-chaos-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.server: PostgresServer | None = None
        self.fleet: Fleet | None = None
        self.faults: FaultInjector | None = None
        self.engine: Engine | None = None
        self.driver: LoadDriver | None = None
        self.summary = Summary(cfg.mode, cfg.seed, cfg.workers, folder=str(self.folder))

    def run(self) -> Summary:
        began = time.monotonic()
        restore = self._log_to_file()
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - the program failing is a failed run
            logger.exception("the chaos program failed")
            self.summary.unmet.append(f"the chaos program itself failed: {exc!r}")
        finally:
            self._cleanup()
            restore()
            if self.summary.passed and not self.cfg.keep:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.summary.folder = ""
            self.summary.total_seconds = time.monotonic() - began
        return self.summary

    def _log_to_file(self) -> Callable[[], None]:
        """This process's log (the driver's and its engine's warnings about dropped
        connections, expected by the hundred) goes to chaos.log in the folder."""
        root = logging.getLogger()
        handler = logging.FileHandler(self.folder / "chaos.log")
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
        saved, level = root.handlers[:], root.level
        root.handlers = [handler]
        root.setLevel(min(level, logging.INFO) if level else logging.INFO)

        def restore() -> None:
            root.handlers = saved
            root.setLevel(level)
            handler.close()

        return restore

    def _run(self) -> None:
        cfg, s = self.cfg, self.summary
        self.echo(f"perdure chaos --{cfg.mode}: seed {cfg.seed}, {cfg.workers} workers, "
                  f">= {cfg.runs} runs over >= {cfg.duration:.0f} s; folder {self.folder}")
        self.server = start_throwaway_cluster()
        url = create_database(self.server.url, DATABASE)
        self.engine = Engine(url, poll_interval=cfg.poll_interval)  # migrates; registers
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(workload.APP_SCHEMA)
        self.fleet = Fleet(url, self.folder, size=cfg.workers, lease=cfg.lease,
                           concurrency=cfg.worker_concurrency, poll_interval=cfg.poll_interval)
        self.fleet.start()
        self.faults = FaultInjector(
            url, self.fleet, self.server.restart, seed=cfg.seed, kill_interval=cfg.kill_interval,
            drop_interval=cfg.drop_interval, pooled_per_round=cfg.pooled_per_round,
            restart_at=cfg.restart_at)
        self.driver = LoadDriver(self.engine, url, seed=cfg.seed, runs=cfg.runs,
                                 duration=cfg.duration, inflight=cfg.inflight,
                                 run_timeout=cfg.run_timeout)
        fault_began = time.monotonic()
        self.faults.start()
        progress = threading.Event()
        threading.Thread(target=self._progress, args=(progress, fault_began), daemon=True).start()
        try:
            self.driver.run()
        finally:
            progress.set()
            self.faults.stop()
        s.fault_seconds = time.monotonic() - fault_began
        self.echo(f"load done after {s.fault_seconds:.0f} s; faults stopped; checking")

        # quiet: a full fleet, the queue drained
        self.fleet.top_up()
        self.driver.join_readers(15)
        jobs = wait_for_no_jobs(url, timeout=2 * cfg.lease + 10)
        result = check_runs(self.engine.world, url, self.driver.tracked)
        check_jobs(jobs, {w.pid for w in self.fleet.live()}, result)
        for worker in self.fleet.crashed():
            result.add(WORKERS, None, f"worker {worker.number} (pid {worker.pid}) exited "
                                      f"{worker.proc.returncode} on its own; log {worker.log_path}")
        self._dump_bad_runs(url, result)

        # connections: bounded while up, none once everything is closed
        s.connections_up = census(url)
        limits = connection_limits(len(self.fleet.live()) + 1, len(self.fleet.live()),
                                   cfg.worker_concurrency)
        for name, n in s.connections_up.items():
            if name in (CHECK_NAME, ADMIN_NAME, CLIENT_NAME):
                continue
            if n > limits.get(name, 0):
                result.add(CONNECTIONS, None, f"{n} connections named {name!r} while up; "
                                              f"at most {limits.get(name, 0)} expected")
        for worker in self.fleet.stop():
            result.add(WORKERS, None, f"worker {worker.number} did not stop on SIGTERM")
        self.engine.shutdown()
        self.engine = None
        s.connections_after = _settle(url, timeout=15)
        for name, n in s.connections_after.items():
            result.add(CONNECTIONS, None, f"{n} connections named {name!r} left after every "
                                          "process closed its engine")
        self._fill(result)

    def _progress(self, stop: threading.Event, began: float) -> None:
        while not stop.wait(10):
            d, f = self.driver, self.faults
            if d is None or f is None:
                return
            ended = sum(1 for t in d.tracked if t.status is not None)
            self.echo(f"  {time.monotonic() - began:5.0f} s: {d.started()} runs started, "
                      f"{ended} ended; {f.stats.kills} kills, {f.stats.drops} drops, "
                      f"{f.stats.restarts} restarts")

    def _dump_bad_runs(self, url: str, result: CheckResult) -> None:
        assert self.driver is not None and self.engine is not None
        by_id = {t.run_id: t for t in self.driver.tracked if t.run_id}
        for run_id in result.bad_runs[:5]:
            t = by_id.get(run_id)
            if t is not None:
                with contextlib.suppress(Exception):
                    result.dumps.append(str(dump_run(self.engine.world, url, t, self.folder)))

    def _fill(self, result: CheckResult) -> None:
        cfg, s = self.cfg, self.summary
        assert self.driver is not None and self.faults is not None
        tracked = self.driver.tracked
        stats = self.faults.stats
        s.runs = len(tracked)
        s.runs_completed = result.runs_completed
        s.steps, s.step_attempts = result.steps, result.step_attempts
        s.planned_retries = result.step_retries
        s.side_effects, s.events = result.side_effects, result.events
        s.chunks_read, s.replayed = result.chunks_read, result.replayed
        s.kills, s.restarts, s.restart_seconds = stats.kills, stats.restarts, stats.restart_seconds
        s.listener_drops, s.pool_drops = stats.listener_drops, stats.pool_drops
        s.connection_drops = stats.drops
        s.client_retries = sum(t.client_retries for t in tracked)
        latencies = sorted(t.latency for t in tracked if t.latency is not None)
        if latencies:
            s.latency_p50 = statistics.median(latencies)
            s.latency_p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        s.lost, s.duplicated = result.count(LOST), result.count(DUPLICATED)
        s.corrupted, s.excess_side_effects = result.count(CORRUPTED), result.count(EXCESS)
        s.reader_errors, s.jobs_left = result.count(READER), result.count(JOBS)
        s.leaked_connections = result.count(CONNECTIONS)
        s.worker_crashes = result.count(WORKERS)
        s.findings = [str(f) for f in result.findings]
        s.dumps = result.dumps
        for what, got, need in (("runs", s.runs, cfg.min_runs), ("worker kills", s.kills,
                                cfg.min_kills), ("connection drops", s.connection_drops,
                                cfg.min_drops), ("server restarts", s.restarts,
                                cfg.min_restarts)):
            if got < need:
                s.unmet.append(f"{what}: {got} < {need} (the --{cfg.mode} minimum)")
        s.unmet += [f"fault injector: {e}" for e in stats.errors]

    def _cleanup(self) -> None:
        if self.driver is not None:
            self.driver.stop()
        if self.faults is not None:
            with contextlib.suppress(Exception):
                self.faults.stop()
        if self.fleet is not None:
            for worker in self.fleet.live():
                with contextlib.suppress(Exception):
                    worker.proc.kill()
                    worker.proc.wait(10)
        if self.engine is not None:
            with contextlib.suppress(Exception):
                self.engine.shutdown(timeout=5)
        if self.server is not None:
            if self.server.datadir:
                with contextlib.suppress(OSError):
                    shutil.copy(os.path.join(self.server.datadir, "log"),
                                self.folder / "postgres.log")
            self.server.stop()


# == the report ======================================================================
def render(s: Summary) -> str:
    def n(x: float) -> str:
        return f"{x:,}" if isinstance(x, int) else f"{x:,.1f}"

    rows: list[tuple[str, str]] = [
        ("runs", f"{n(s.runs)} started, {n(s.runs_completed)} completed, "
                 f"{n(s.replayed)} replayed cleanly"),
        ("steps", f"{n(s.steps)} ({n(s.step_attempts)} attempts, "
                  f"{n(s.planned_retries)} retries, {n(s.side_effects)} side effects)"),
        ("events", n(s.events)),
        ("stream chunks read", n(s.chunks_read)),
        ("worker kills", n(s.kills)),
        ("connection drops", f"{n(s.connection_drops)} ({n(s.listener_drops)} LISTEN, "
                             f"{n(s.pool_drops)} pooled)"),
        ("server restarts", f"{n(s.restarts)} ({s.restart_seconds:.1f} s)"),
        ("client retries", n(s.client_retries)),
        ("run latency", f"p50 {s.latency_p50:.1f} s, p99 {s.latency_p99:.1f} s"),
        ("lost", n(s.lost)),
        ("duplicated results", n(s.duplicated)),
        ("corrupted", n(s.corrupted)),
        ("side effects > attempts", n(s.excess_side_effects)),
        ("stream reader errors", n(s.reader_errors)),
        ("jobs left / on dead workers", n(s.jobs_left)),
        ("leaked connections", n(s.leaked_connections)),
        ("worker crashes", n(s.worker_crashes)),
        ("time", f"{s.fault_seconds:.0f} s under faults, {s.total_seconds:.0f} s in all"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"perdure chaos --{s.mode} (seed {s.seed}, {s.workers} workers)",
             "-" * (width + 40)]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append("-" * (width + 40))
    for problem in s.unmet:
        lines.append(f"UNMET: {problem}")
    for finding in s.findings[:40]:
        lines.append(f"FINDING: {finding}")
    if len(s.findings) > 40:
        lines.append(f"... and {len(s.findings) - 40} more findings")
    for dump in s.dumps:
        lines.append(f"bad run dumped to {dump}")
    if s.folder and not s.passed:
        lines.append(f"worker logs and postgres.log kept in {s.folder}")
    lines.append("PASS" if s.passed else "FAIL")
    return "\n".join(lines)


def run_chaos(cfg: ChaosConfig, *, summary_json: str | None = None,
              echo: Callable[[str], None] | None = None) -> Summary:
    def _echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    summary = ChaosRun(cfg, echo or _echo).run()
    if summary_json:
        Path(summary_json).write_text(json.dumps(summary.as_json(), indent=2) + "\n")
    return summary
