"""The checks after a chaos run: nothing lost, nothing duplicated, nothing corrupted.

Per run (what the driver saw, the event log, the projections, the stored stream,
the application's side-effect rows):

- it completed, with exactly :func:`workload.expected_result`;
- its log is legal: ``seq`` dense from 1, ``run_created`` first, every event a
  legal transition of its entity in order (``world.is_legal``), so nothing after a
  terminal event; exactly one terminal event per run, per step, per wait; the hook
  received exactly one payload;
- the projections agree with the log (step status; ``attempt`` = the number of
  ``step_started``);
- it replays cleanly (:func:`perdure.testing.assert_replays_cleanly`) to the same result;
- its live reader got every chunk once, in order, then EOF; so does the stored stream;
- every step's side effects show only recorded attempts (``attempt <= steps.attempt``),
  and the attempt that completed the step left its row.

Globally: one run per start (idempotency keys held through retried starts), no job
left (and none claimed by a dead worker), no worker that died without being killed,
and no connection leaked.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from .._streams import decode_chunk
from ..testing import assert_replays_cleanly
from ..world import (
    CHUNK_EOF,
    CREATION_EVENTS,
    RUN_TERMINAL_EVENTS,
    TRANSITIONS,
    Chunk,
    Event,
    World,
    is_legal,
)
from . import workload
from ._load import Tracked

logger = logging.getLogger(__name__)

LOST, DUPLICATED, CORRUPTED = "lost", "duplicated", "corrupted"
EXCESS, READER, JOBS, CONNECTIONS, WORKERS = (
    "excess side effects", "reader errors", "jobs left", "leaked connections", "worker crashes")
STEP_TERMINAL_EVENTS = ("step_completed", "step_failed")
STEPS_PER_RUN = workload.SEQUENTIAL + workload.FAN_OUT + 1


@dataclass
class Finding:
    kind: str
    run: str | None
    detail: str

    def __str__(self) -> str:
        where = f"run {self.run}: " if self.run else ""
        return f"[{self.kind}] {where}{self.detail}"


@dataclass
class CheckResult:
    findings: list[Finding] = field(default_factory=list)
    runs_checked: int = 0
    runs_completed: int = 0
    replayed: int = 0
    steps: int = 0
    step_attempts: int = 0
    step_retries: int = 0
    side_effects: int = 0
    chunks_read: int = 0
    events: int = 0
    bad_runs: list[str] = field(default_factory=list)
    dumps: list[str] = field(default_factory=list)

    def add(self, kind: str, run: str | None, detail: str) -> None:
        self.findings.append(Finding(kind, run, detail))
        if run is not None and run not in self.bad_runs:
            self.bad_runs.append(run)

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)


# == per run ====================================================================
def _entity(event: Event) -> tuple[str, str | None]:
    kind = event.event_type.split("_", 1)[0]
    return kind, (None if kind == "run" else event.correlation_id)


def check_log(events: list[Event], out: CheckResult, run: str) -> dict[str, int]:
    """Legality of one log; returns how many step_started each step has."""
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(events) + 1)):
        out.add(CORRUPTED, run, f"seq not dense from 1: {seqs[:5]}... ({len(seqs)} events)")
    if not events or events[0].event_type != "run_created":
        out.add(CORRUPTED, run, "the log does not begin with run_created")
    status: dict[tuple[str, str | None], str | None] = {}
    terminals: Counter[tuple[str, str | None]] = Counter()
    received: Counter[str | None] = Counter()
    started: Counter[str] = Counter()
    created: set[tuple[str, str | None]] = set()
    run_ended_at: int | None = None
    for e in events:
        entity = _entity(e)
        current = status.get(entity)
        if e.event_type in RUN_TERMINAL_EVENTS or e.event_type in STEP_TERMINAL_EVENTS \
                or e.event_type == "wait_completed":
            terminals[entity] += 1
            if terminals[entity] > 1:
                out.add(DUPLICATED, run, f"seq {e.seq}: a second terminal event "
                                         f"{e.event_type} for {entity[0]} {entity[1] or ''}")
                continue
        if run_ended_at is not None:
            out.add(CORRUPTED, run, f"seq {e.seq} {e.event_type} after the run's terminal "
                                    f"event (seq {run_ended_at})")
            continue
        if e.event_type in CREATION_EVENTS:
            if entity in created:
                out.add(DUPLICATED, run, f"seq {e.seq}: second {e.event_type} for {entity[1]}")
                continue
            created.add(entity)
        if not is_legal(e.event_type, current):
            out.add(CORRUPTED, run, f"seq {e.seq}: {e.event_type} is illegal for "
                                    f"{entity[0]} {entity[1] or ''} in status {current}")
        status[entity] = TRANSITIONS[e.event_type].to_status
        if e.event_type in RUN_TERMINAL_EVENTS:
            run_ended_at = e.seq
        elif e.event_type == "hook_received":
            received[e.correlation_id] += 1
        elif e.event_type == "step_started":
            started[e.correlation_id or ""] += 1
    for entity in created:
        kind, cid = entity
        if kind in ("run", "step", "wait") and terminals[entity] == 0:
            out.add(CORRUPTED if kind != "run" else LOST, run,
                    f"{kind} {cid or ''} has no terminal event")
    hooks = [cid for kind, cid in created if kind == "hook"]
    for cid in hooks:
        if received[cid] > 1:
            out.add(DUPLICATED, run, f"hook {cid} received {received[cid]} payloads")
        elif received[cid] == 0:
            out.add(LOST, run, f"hook {cid} never received its payload")
    return dict(started)


def check_run(world: World, t: Tracked, steps: list[tuple[Any, ...]],
              effects: dict[str, set[int]], out: CheckResult) -> None:
    run = t.run_id
    label = run or f"#{t.index} ({t.key}, never started)"
    if run is None:
        out.add(LOST, None, f"run #{t.index} ({t.key}) was never started: {t.error}")
        return
    out.runs_checked += 1
    expected = workload.expected_result(t.key)
    if t.status == "completed":
        out.runs_completed += 1
        if t.result != expected:
            out.add(CORRUPTED, label, f"result {t.result!r} != expected {expected!r}")
    else:
        out.add(LOST, label, f"ended {t.status!r}: {t.error or ''}".strip())

    events = world.list_events(run)
    out.events += len(events)
    started = check_log(events, out, label)
    completed_attempt: dict[str, int] = {}
    for e in events:
        if e.event_type == "step_completed" and e.correlation_id:
            completed_attempt[e.correlation_id] = int((e.data or {}).get("attempt") or 0)
        elif e.event_type == "step_retrying":
            out.step_retries += 1

    # projections, and side effects against recorded attempts
    if t.status == "completed" and len(steps) != STEPS_PER_RUN:
        out.add(CORRUPTED, label, f"{len(steps)} steps recorded, expected {STEPS_PER_RUN}")
    known = set()
    for cid, name, status, attempt in steps:
        known.add(cid)
        out.steps += 1
        out.step_attempts += attempt
        if attempt != started.get(cid, 0):
            out.add(CORRUPTED, label, f"step {cid} ({name}): attempt {attempt} but "
                                      f"{started.get(cid, 0)} step_started events")
        if t.status == "completed" and status != "completed":
            out.add(CORRUPTED, label, f"step {cid} ({name}) is {status} in a completed run")
        seen = effects.get(cid, set())
        out.side_effects += len(seen)
        beyond = sorted(a for a in seen if a > attempt or a < 1)
        if beyond or len(seen) > attempt:
            out.add(EXCESS, label, f"step {cid} ({name}): side effects of attempts "
                                   f"{sorted(seen)} but {attempt} recorded")
        done = completed_attempt.get(cid)
        if done is not None and done not in seen:
            out.add(LOST, label, f"step {cid} ({name}) completed by attempt {done}, "
                                 f"which left no side effect (attempts seen {sorted(seen)})")
    for cid in set(effects) - known:
        out.add(EXCESS, label, f"side effects for {cid}, a step the log does not know")

    # replay
    if events and events[-1].event_type == "run_completed":
        try:
            outcome = assert_replays_cleanly(world, run)
            if outcome != expected:
                out.add(CORRUPTED, label, f"replay gives {outcome!r}, expected {expected!r}")
            else:
                out.replayed += 1
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            out.add(CORRUPTED, label, f"does not replay cleanly: {exc!r}")

    # streams: what the live reader got, and what is stored
    want = [workload.chunk(t.key, i) for i in range(workload.CHUNKS)]
    out.chunks_read += len(t.chunks)
    _compare_chunks(t.chunks, want, out, label, "live reader")
    if t.reader_errors:
        out.add(READER, label, f"the reader raised {len(t.reader_errors)} times: "
                               f"{t.reader_errors[0]}")
    if not t.reader_done:
        out.add(LOST, label, "the live reader never reached the end of the stream")
    stored = world.read_chunks(run, workload.STREAM, start=0, limit=workload.CHUNKS + 10)
    if not stored or stored[-1].kind != CHUNK_EOF:
        out.add(LOST, label, "the stored stream has no EOF")
    values = [decode_chunk(c) for c in stored if c.kind != CHUNK_EOF]
    _compare_chunks(values, want, out, label, "stored stream")
    _check_indexes(stored, out, label)


def _compare_chunks(got: list[Any], want: list[Any], out: CheckResult, run: str,
                    who: str) -> None:
    if got == want:
        return
    seen = Counter(json.dumps(v, sort_keys=True) for v in got)
    dups = sum(n - 1 for n in seen.values() if n > 1)
    wanted = {json.dumps(v, sort_keys=True) for v in want}
    missing = len(wanted - set(seen))
    alien = len(set(seen) - wanted)
    if dups:
        out.add(DUPLICATED, run, f"{who}: {dups} chunks delivered more than once")
    if missing:
        out.add(LOST, run, f"{who}: {missing} of {len(want)} chunks missing")
    if alien or (not dups and not missing):
        out.add(CORRUPTED, run, f"{who}: chunks out of order or unknown "
                                f"({alien} unknown; first {got[:3]!r})")


def _check_indexes(stored: list[Chunk], out: CheckResult, run: str) -> None:
    indexes = [c.index for c in stored]
    if indexes != list(range(len(stored))):
        out.add(CORRUPTED, run, f"stored chunk indexes not dense: {indexes[:10]}...")


# == all runs ===================================================================
def check_runs(world: World, url: str, tracked: Iterable[Tracked]) -> CheckResult:
    out = CheckResult()
    tracked = list(tracked)
    with psycopg.connect(url, autocommit=True, application_name="perdure-chaos-check") as conn:
        steps: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for run_id, cid, name, status, attempt in conn.execute(
                "SELECT run_id, correlation_id, name, status, attempt FROM perdure.steps"
                " ORDER BY run_id, seq"):
            steps[run_id].append((cid, name, status, attempt))
        effects: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        for run_id, cid, attempt in conn.execute(
                "SELECT run_id, correlation_id, attempt FROM chaos_app.side_effects"):
            effects[run_id][cid].add(attempt)
        runs_in_db = conn.execute(
            "SELECT workflow_name, count(*) FROM perdure.runs GROUP BY 1").fetchall()
    for t in tracked:
        try:
            check_run(world, t, steps.get(t.run_id or "", []),
                      effects.get(t.run_id or "", {}), out)
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a finding
            logger.exception("checking run %s failed", t.run_id)
            out.add(CORRUPTED, t.run_id, f"could not be checked: {exc!r}")
    started = sum(1 for t in tracked if t.run_id)
    ids = Counter(t.run_id for t in tracked if t.run_id)
    for run_id, n in ids.items():
        if n > 1:
            out.add(CORRUPTED, run_id, f"{n} starts with different keys returned this run")
    in_db = sum(n for _, n in runs_in_db)
    if in_db != started:
        out.add(DUPLICATED, None, f"{in_db} runs in the database for {started} starts "
                                  f"(by workflow: {runs_in_db})")
    for run_id in set(effects) - set(ids):
        out.add(EXCESS, run_id, "side effects for a run the driver never started")
    return out


def wait_for_no_jobs(url: str, timeout: float) -> list[tuple[Any, ...]]:
    """Jobs still in the queue once it had ``timeout`` seconds to drain."""
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(url, autocommit=True, application_name="perdure-chaos-check") as c:
            jobs = c.execute("SELECT id, kind, run_id, correlation_id, claimed_by,"
                             " lease_expires_at - perdure.clock(), due_at - perdure.clock()"
                             " FROM perdure.jobs ORDER BY id").fetchall()
        if not jobs or time.monotonic() > deadline:
            return jobs
        time.sleep(0.5)


def check_jobs(jobs: list[tuple[Any, ...]], live_pids: set[int], out: CheckResult) -> None:
    for job_id, kind, run_id, cid, claimed_by, lease_left, due_in in jobs:
        pid = _pid_of(claimed_by)
        if claimed_by and pid not in live_pids:
            out.add(JOBS, run_id, f"job {job_id} ({kind} {cid or ''}) still claimed by dead "
                                  f"worker {claimed_by} (lease {lease_left:+.1f} s)")
        else:
            out.add(JOBS, run_id, f"job {job_id} ({kind} {cid or ''}) left in the queue "
                                  f"(claimed by {claimed_by}, due in {due_in:+.1f} s)")


def _pid_of(worker_id: str | None) -> int | None:
    parts = (worker_id or "").split(":")
    try:
        return int(parts[-2]) if len(parts) >= 3 else None
    except ValueError:
        return None


def dump_run(world: World, url: str, t: Tracked, folder: Path) -> Path:
    """Everything about one run, for a bug report."""
    path = folder / f"run-{t.key}.txt"
    lines = [f"run {t.run_id} key {t.key} (start {t.start_way}, resume {t.resume_way})",
             f"driver: status={t.status} error={t.error} retries={t.client_retries} "
             f"resumes={t.resumes} latency={t.latency}",
             f"reader: done={t.reader_done} chunks={len(t.chunks)} errors={t.reader_errors}",
             f"result: {t.result!r}", "", "events:"]
    if t.run_id:
        for e in world.list_events(t.run_id):
            lines.append(f"  {e.seq:4d} {e.created_at:.6f} {e.event_type:15s} "
                         f"{e.correlation_id or '-':5s} {json.dumps(e.data)[:300]}")
        lines += ["", "steps (cid, name, status, attempt, side-effect attempts/pids):"]
        with psycopg.connect(url, autocommit=True) as conn:
            effects = defaultdict(list)
            for cid, attempt, pid, at in conn.execute(
                    "SELECT correlation_id, attempt, pid, written_at FROM chaos_app.side_effects"
                    " WHERE run_id = %s ORDER BY written_at", (t.run_id,)):
                effects[cid].append((attempt, pid, at.isoformat()))
            for step in world.list_steps(t.run_id, limit=1000).items:
                lines.append(f"  {step.correlation_id} {step.name} {step.status} "
                             f"{step.attempt} {effects.get(step.correlation_id, [])}")
            lines += ["", "jobs:"]
            for job in world.list_jobs(run_id=t.run_id):
                lines.append(f"  {job}")
        stored = world.read_chunks(t.run_id, workload.STREAM, start=0, limit=1000)
        lines += ["", f"stored chunks: {len(stored)}; reader got indexes "
                      f"{[c.get('i') if isinstance(c, dict) else c for c in t.chunks][:250]}"]
    path.write_text("\n".join(lines) + "\n")
    return path
