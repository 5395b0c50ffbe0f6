"""perdure.create_run_first_step (migration 0026) and perdure.create_run_ended
(0027) write what create_run_started writes.

A local start whose batch is the run started with its first step (created and
started by the starting worker), or the run started and ended, has a function of
its own. These tests start two runs with the same batch, one through
``World.create_run_started`` (which picks the function for that batch) and one
through the SQL function ``create_run_started``, and compare every row, answer and
notification; then the cases where nothing may be written.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from perdure.backends.postgres import PostgresWorld
from perdure.backends.postgres._db import Retry
from perdure.backends.postgres._eventlog import event_arrays, job_arrays, start_call
from perdure.errors import EntityConflictError
from perdure.world import NewEvent, NewJob, RunRecord, uuid7

pytestmark = pytest.mark.postgres

T = 1_700_000_000.0  # times given, so both runs get the same
INPUT = '[1,"two",{"three":3}]'
FUNCTIONS = {"first step": "create_run_first_step", "completed": "create_run_ended",
             "failed": "create_run_ended"}


def _batch(run_id: str, kind: str = "first step",
           worker: str = "w1") -> tuple[list[NewEvent], list[NewJob]]:
    begun = NewEvent("run_started", None, {"by": "w1"}, T + 0.5)
    if kind == "completed":
        return [begun, NewEvent("run_completed", None, {"result": [1, 2]}, T + 0.6)], []
    if kind == "failed":
        error = {"error": {"type": "ValueError", "message": "no", "traceback": "..."}}
        return [begun, NewEvent("run_failed", None, error, T + 0.6)], []
    events = [begun,
              NewEvent("step_created", "s1", {"name": "charge", "args": [7]}, T + 0.6),
              NewEvent("step_started", "s1", {"attempt": 1}, T + 0.7)]
    return events, [NewJob("step", run_id, "s1", claimed_by=worker, lease_seconds=45)]


def _general(world: PostgresWorld, run_id: str, key: str | None, events: list[NewEvent],
             jobs: list[NewJob]) -> tuple[Any, ...]:
    """The batch through the SQL function ``create_run_started`` itself, its streams
    closed when it ends the run (as a start's activation asks)."""
    ends = any(e.event_type.startswith("run_") and e.event_type != "run_started"
               for e in events)
    row = world._db.one("create_run_started",
                        ("wf", INPUT, run_id, key, T, *event_arrays(events), *job_arrays(jobs),
                         ends), retry=Retry.NEVER)
    assert row is not None
    return tuple(row)


def _rows(world: PostgresWorld, admin: psycopg.Connection[Any], run_id: str) -> tuple[Any, ...]:
    """Every row of the run, its idempotency key (which two runs cannot share) checked
    and left out."""
    run = world.get_run(run_id)
    assert run is not None
    events = world.list_events(run_id)
    assert events[0].data is not None
    assert events[0].data.pop("idempotency_key") == run.idempotency_key
    steps = admin.execute(
        "SELECT correlation_id, seq, name, status, attempt, created_at, started_at,"
        " completed_at, retry_after FROM perdure.steps WHERE run_id = %s", (run_id,)).fetchall()
    jobs = admin.execute(
        "SELECT kind, correlation_id, claimed_by, attempts, lease_expires_at - created_at,"
        " due_at = created_at FROM perdure.jobs WHERE run_id = %s", (run_id,)).fetchall()
    return (
        (run.workflow_name, run.status, run.created_at, run.started_at, run.completed_at,
         run.last_seq, run.result_seq, run.consumed_seq),
        [(e.seq, e.event_type, e.correlation_id, e.data, e.created_at)
         for e in events],
        steps,
        jobs,
    )


def _heard(admin: psycopg.Connection[Any]) -> list[str]:
    """What ``admin`` heard on perdure_runs since it began to listen: everything
    before its own notification, which comes after any committed earlier."""
    admin.execute("NOTIFY perdure_runs, 'end of test'")
    heard: list[str] = []
    for n in admin.notifies(timeout=10):
        if n.payload == "end of test":
            return heard
        heard.append(n.payload)
    raise AssertionError(f"own notification not heard; heard {heard}")


def _answer(record: RunRecord) -> tuple[Any, ...]:
    """A run as an answer gives it, without what differs between two runs."""
    return (record.workflow_name, record.status, record.created_at, record.started_at,
            record.completed_at, record.last_seq, record.result_seq, record.consumed_seq)


@pytest.mark.parametrize("kind", list(FUNCTIONS))
@pytest.mark.parametrize("key", [None, "key"], ids=["no key", "a key"])
def test_a_local_start_writes_what_create_run_started_writes(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any], queries: list[str],
    key: str | None, kind: str,
) -> None:
    fast, general = uuid7(), uuid7()
    admin.execute("LISTEN perdure_runs")
    queries.clear()
    events, jobs = _batch(fast, kind)
    ends = not jobs
    record, appended = pg_world.create_run_started(
        "wf", INPUT, run_id=fast, created_at=T, events=events, jobs=jobs, close_streams=ends,
        idempotency_key=key and f"{key}-fast")
    assert queries == [FUNCTIONS[kind]]
    events, jobs = _batch(general, kind)
    row = _general(pg_world, general, key and f"{key}-general", events, jobs)
    assert _rows(pg_world, admin, fast) == _rows(pg_world, admin, general)
    # the answers: created, the batch's last seq, the step's job if any, the run
    assert appended is not None and row[0] is True
    assert appended.last_seq == row[1] == len(events) + 1
    assert [e.seq for e in appended.events] == list(range(2, len(events) + 2))
    assert len(appended.job_ids) == len(row[3]) == len(jobs)
    for job_id in appended.job_ids:
        assert admin.execute("SELECT correlation_id FROM perdure.jobs WHERE id = %s",
                             (job_id,)).fetchone() == ("s1",)
    assert record.id == fast and record.idempotency_key == (key and f"{key}-fast")
    stored = pg_world.get_run(fast)
    assert stored is not None
    assert _answer(record) == _answer(stored) == _answer(RunRecord(*row[5:]))
    assert record.updated_at == stored.updated_at
    assert _heard(admin) == ([f"run:{fast}", f"run:{general}"] if ends else [])


@pytest.mark.parametrize("kind", list(FUNCTIONS))
def test_a_used_key_answers_with_its_run_and_writes_nothing(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any], queries: list[str],
    kind: str,
) -> None:
    first, second = uuid7(), uuid7()
    events, jobs = _batch(first, kind)
    pg_world.create_run_started("wf", INPUT, run_id=first, created_at=T, events=events,
                                jobs=jobs, idempotency_key="once")
    before = _rows(pg_world, admin, first)
    admin.execute("LISTEN perdure_runs")
    queries.clear()
    events, jobs = _batch(second, kind, worker="w2")
    record, appended = pg_world.create_run_started(
        "wf", INPUT, run_id=second, created_at=T + 5, events=events, jobs=jobs,
        idempotency_key="once")
    assert queries == [FUNCTIONS[kind]]
    assert appended is None
    stored = pg_world.get_run(first)
    assert stored is not None
    assert record == stored
    assert pg_world.get_run(second) is None
    assert pg_world.list_events(second) == []
    assert admin.execute("SELECT count(*) FROM perdure.jobs WHERE run_id = %s",
                         (second,)).fetchone() == (0,)
    assert _rows(pg_world, admin, first) == before
    assert _heard(admin) == []


@pytest.mark.parametrize("kind", list(FUNCTIONS))
def test_a_run_id_in_use_is_refused_as_create_run_started_refuses_it(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any], kind: str,
) -> None:
    run_id = uuid7()
    events, jobs = _batch(run_id, kind)
    pg_world.create_run_started("wf", INPUT, run_id=run_id, created_at=T, events=events,
                                jobs=jobs)
    before = _rows(pg_world, admin, run_id)
    with pytest.raises(EntityConflictError):
        pg_world.create_run_started("wf", INPUT, run_id=run_id, created_at=T, events=events,
                                    jobs=jobs)
    with pytest.raises(EntityConflictError):
        _general(pg_world, run_id, None, events, jobs)
    assert _rows(pg_world, admin, run_id) == before


def _changed(run_id: str, change: str) -> tuple[list[NewEvent], list[NewJob], bool]:
    """A batch like one of the two, but for one change."""
    events, jobs = _batch(run_id)
    ended, _ = _batch(run_id, "completed")
    claimer = jobs[0].claimed_by
    later = NewJob("workflow", run_id, due_at=T + 60)
    changes: dict[str, tuple[list[NewEvent], list[NewJob], bool]] = {
        "two steps": (events + [NewEvent("step_created", "s2", {"name": "x", "args": []}, T)],
                      jobs, False),
        "another step started": (events[:2] + [NewEvent("step_started", "s2", {}, T)], jobs,
                                 False),
        "a step job due later": ([*events], [NewJob("step", run_id, "s1", due_at=T + 60,
                                                     claimed_by=claimer)], False),
        "a step job nobody claims": ([*events], [NewJob("step", run_id, "s1")], False),
        "another run's step job": ([*events], [NewJob("step", uuid7(), "s1",
                                                      claimed_by=claimer)], False),
        "a step and streams closed": ([*events], jobs, True),
        "an end with a job": (ended, [later], True),
        "a cancel": ([ended[0], NewEvent("run_cancelled", None, {}, T)], [], True),
        "a wait": ([ended[0], NewEvent("wait_created", "w1", {"resume_at": T + 60}, T)],
                   [later], False),
        "started only": (ended[:1], [], False),
    }
    return changes[change]


@pytest.mark.parametrize("change", [
    "two steps", "another step started", "a step job due later", "a step job nobody claims",
    "another run's step job", "a step and streams closed", "an end with a job", "a cancel",
    "a wait", "started only",
])
def test_any_other_start_goes_to_create_run_started(change: str) -> None:
    run_id = uuid7()
    for kind, function in FUNCTIONS.items():
        events, jobs = _batch(run_id, kind)
        assert start_call(run_id, events, jobs, not jobs)[0] == function
    assert start_call(run_id, *_changed(run_id, change))[0] == "create_run_started"
