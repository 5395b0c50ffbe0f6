"""perdure.create_run_first_step (migration 0026) writes what create_run_started
writes.

A local start whose batch is the run started with its first step, created and
started by the starting worker, has a function of its own. These tests start two
runs with the same batch, one through ``World.create_run_started`` (which picks
the function for that batch) and one through the SQL function
``create_run_started``, and compare every row and every answer; then the cases
where nothing may be written.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from perdure.backends.postgres import PostgresWorld
from perdure.backends.postgres._db import Retry
from perdure.backends.postgres._eventlog import event_arrays, first_step_params, job_arrays
from perdure.errors import EntityConflictError
from perdure.world import NewEvent, NewJob, RunRecord, uuid7

pytestmark = pytest.mark.postgres

T = 1_700_000_000.0  # times given, so both runs get the same
INPUT = '[1,"two",{"three":3}]'


def _batch(run_id: str, worker: str = "w1") -> tuple[list[NewEvent], list[NewJob]]:
    events = [NewEvent("run_started", None, {}, T + 0.5),
              NewEvent("step_created", "s1", {"name": "charge", "args": [7]}, T + 0.6),
              NewEvent("step_started", "s1", {"attempt": 1}, T + 0.7)]
    return events, [NewJob("step", run_id, "s1", claimed_by=worker, lease_seconds=45)]


def _recording(world: PostgresWorld, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the queries ``world`` runs from now on."""
    called: list[str] = []
    one = world._db.one
    monkeypatch.setattr(world._db, "one",
                        lambda name, *a, **k: (called.append(name), one(name, *a, **k))[1])
    return called


def _general(world: PostgresWorld, run_id: str, key: str | None, events: list[NewEvent],
             jobs: list[NewJob]) -> tuple[Any, ...]:
    """The batch through the SQL function ``create_run_started`` itself."""
    row = world._db.one("create_run_started",
                        ("wf", INPUT, run_id, key, T, *event_arrays(events), *job_arrays(jobs),
                         False), retry=Retry.NEVER)
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


def _answer(record: RunRecord) -> tuple[Any, ...]:
    """A run as an answer gives it, without what differs between two runs."""
    return (record.workflow_name, record.status, record.created_at, record.started_at,
            record.completed_at, record.last_seq, record.result_seq, record.consumed_seq)


@pytest.mark.parametrize("key", [None, "key"], ids=["no key", "a key"])
def test_a_first_step_start_writes_what_create_run_started_writes(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch,
    key: str | None,
) -> None:
    fast, general = uuid7(), uuid7()
    called = _recording(pg_world, monkeypatch)
    events, jobs = _batch(fast)
    record, appended = pg_world.create_run_started(
        "wf", INPUT, run_id=fast, created_at=T, events=events, jobs=jobs,
        idempotency_key=key and f"{key}-fast")
    assert called == ["create_run_first_step"]
    events, jobs = _batch(general)
    row = _general(pg_world, general, key and f"{key}-general", events, jobs)
    assert _rows(pg_world, admin, fast) == _rows(pg_world, admin, general)
    # the answers: created, the batch's last seq, one job (the step's), the run
    assert appended is not None and row[0] is True
    assert appended.last_seq == row[1] == 4
    assert [e.seq for e in appended.events] == [2, 3, 4]
    [job_id] = appended.job_ids
    assert len(row[3]) == 1
    assert admin.execute("SELECT correlation_id FROM perdure.jobs WHERE id = %s",
                         (job_id,)).fetchone() == ("s1",)
    assert record.id == fast and record.idempotency_key == (key and f"{key}-fast")
    stored = pg_world.get_run(fast)
    assert stored is not None
    assert _answer(record) == _answer(stored) == _answer(RunRecord(*row[5:]))
    assert record.updated_at == stored.updated_at


def test_a_used_key_answers_with_its_run_and_writes_nothing(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = uuid7(), uuid7()
    events, jobs = _batch(first)
    pg_world.create_run_started("wf", INPUT, run_id=first, created_at=T, events=events,
                                jobs=jobs, idempotency_key="once")
    before = _rows(pg_world, admin, first)
    called = _recording(pg_world, monkeypatch)
    events, jobs = _batch(second, worker="w2")
    record, appended = pg_world.create_run_started(
        "wf", INPUT, run_id=second, created_at=T + 5, events=events, jobs=jobs,
        idempotency_key="once")
    assert called == ["create_run_first_step"]
    assert appended is None
    stored = pg_world.get_run(first)
    assert stored is not None
    assert record == stored
    assert pg_world.get_run(second) is None
    assert pg_world.list_events(second) == []
    assert admin.execute("SELECT count(*) FROM perdure.jobs WHERE run_id = %s",
                         (second,)).fetchone() == (0,)
    assert _rows(pg_world, admin, first) == before


def test_a_run_id_in_use_is_refused_as_create_run_started_refuses_it(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any],
) -> None:
    run_id = uuid7()
    events, jobs = _batch(run_id)
    pg_world.create_run_started("wf", INPUT, run_id=run_id, created_at=T, events=events,
                                jobs=jobs)
    before = _rows(pg_world, admin, run_id)
    with pytest.raises(EntityConflictError):
        pg_world.create_run_started("wf", INPUT, run_id=run_id, created_at=T, events=events,
                                    jobs=jobs)
    with pytest.raises(EntityConflictError):
        _general(pg_world, run_id, None, events, jobs)
    assert _rows(pg_world, admin, run_id) == before


@pytest.mark.parametrize("change", [
    "another event", "two steps", "another step started", "a job due later",
    "a job nobody claims", "another run's job", "streams closed",
])
def test_any_other_start_goes_to_create_run_started(change: str) -> None:
    run_id = uuid7()
    events, jobs = _batch(run_id)
    close = False
    job = jobs[0]
    if change == "another event":
        events = [events[0], NewEvent("run_completed", None, {"result": 1}, T + 1)]
        jobs = []
    elif change == "two steps":
        events = events + [NewEvent("step_created", "s2", {"name": "charge", "args": []}, T)]
    elif change == "another step started":
        events[2] = NewEvent("step_started", "s2", {"attempt": 1}, T + 0.7)
    elif change == "a job due later":
        jobs = [NewJob("step", run_id, "s1", due_at=T + 60, claimed_by="w1")]
    elif change == "a job nobody claims":
        jobs = [NewJob("step", run_id, "s1")]
    elif change == "another run's job":
        jobs = [NewJob("step", uuid7(), "s1", claimed_by=job.claimed_by)]
    else:
        close = True
    assert first_step_params(run_id, *_batch(run_id), False) is not None
    assert first_step_params(run_id, events, jobs, close) is None
