"""perdure.append_next_step (migration 0018) writes what append_events writes.

The sequential step's append has a function of its own, with scalar arguments.
These tests run the same batches on two runs, one through ``World.append`` (which
picks the function for that shape of batch) and one through ``append_events``,
and compare every row the appends wrote; then they check that each refusal is
the general path's.
"""

from __future__ import annotations

from typing import Any

import pytest

from perdure.backends.postgres import PostgresWorld
from perdure.backends.postgres._db import Retry
from perdure.backends.postgres._eventlog import append_params
from perdure.errors import EntityConflictError, RunNotFoundError, StaleStateError
from perdure.world import AppendRequest, NewEvent, NewJob, uuid7

pytestmark = pytest.mark.postgres

T = 1_700_000_000.0  # event times given, so both runs get the same


def _batch(done: str | None, cid: str, worker: str, at: float,
           kind: str = "step_completed") -> tuple[list[NewEvent], list[NewJob]]:
    events = [] if done is None else [NewEvent(kind, done, {"output": done}, at)]
    events += [NewEvent("step_created", cid, {"name": "noop", "args": [cid]}, at + 0.1),
               NewEvent("step_started", cid, {"attempt": 1}, at + 0.2)]
    return events, [NewJob("step", "", cid, claimed_by=worker, lease_seconds=30)]


def _for(run_id: str, jobs: list[NewJob]) -> list[NewJob]:
    return [NewJob(j.kind, run_id, j.correlation_id, j.due_at, j.claimed_by, j.lease_seconds)
            for j in jobs]


def _general(world: PostgresWorld, run_id: str, events: list[NewEvent], jobs: list[NewJob],
             ack: list[int], expected_result_seq: int | None = None) -> list[int]:
    params = append_params(AppendRequest(run_id, events, None, expected_result_seq,
                                         _for(run_id, jobs), ack, True, False))
    row = world._db.one("append_events", params, retry=Retry.NEVER)
    assert row is not None
    return list(row[2])


def _rows(world: PostgresWorld, run_id: str) -> tuple[Any, ...]:
    run = world.get_run(run_id)
    assert run is not None
    jobs = world.list_jobs(run_id=run_id)
    return (
        (run.status, run.last_seq, run.result_seq, run.consumed_seq, run.completed_at),
        [(e.seq, e.event_type, e.correlation_id, e.data, e.created_at)
         for e in world.list_events(run_id)],
        [(s.correlation_id, s.name, s.status, s.attempt, s.created_at, s.started_at,
          s.completed_at) for s in world.list_steps(run_id).items],
        [(j.kind, j.correlation_id, j.claimed_by, j.attempts) for j in jobs],
    )


def _new_run(world: PostgresWorld) -> str:
    run_id = uuid7()
    world.create_run("wf", "[]", run_id=run_id, created_at=T)
    world.append(run_id, [NewEvent("run_started", None, {}, T)])
    return run_id


def test_a_chain_of_steps_writes_what_append_events_writes(
    pg_world: PostgresWorld, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast, general = _new_run(pg_world), _new_run(pg_world)
    called: list[str] = []
    one = pg_world._db.one
    monkeypatch.setattr(pg_world._db, "one",
                        lambda name, *a, **k: (called.append(name), one(name, *a, **k))[1])
    held = {fast: [], general: []}  # type: dict[str, list[int]]
    batches = [(None, "s1", "w1", "step_completed"), ("s1", "s2", "w1", "step_completed"),
               ("s2", "s3", "w1", "step_completed"), ("s3", "s4", "w1", "step_failed"),
               ("s4", "s5", "w2", "step_completed")]  # the last: w1's job, acked by w2
    for i, (done, cid, worker, kind) in enumerate(batches):
        events, jobs = _batch(done, cid, worker, T + i, kind)
        called.clear()
        held[fast] = pg_world.append(fast, events, jobs=_for(fast, jobs), ack=held[fast],
                                     consumed=True).job_ids
        assert called == (["append_next_step"] if done else ["append_events"])
        held[general] = _general(pg_world, general, events, jobs, held[general])
        assert _rows(pg_world, fast) == _rows(pg_world, general), f"after {cid}"
    assert [(j.kind, j.correlation_id, j.claimed_by) for j in pg_world.list_jobs(run_id=fast)] \
        == [("workflow", None, None), ("step", "s5", "w2")]  # the start's job; w1's is gone


@pytest.mark.parametrize("case", ["stale", "ended step", "duplicate step", "ended run",
                                  "unknown run"])
def test_a_refused_next_step_is_refused_as_append_events_refuses_it(
    pg_world: PostgresWorld, case: str,
) -> None:
    run_id = _new_run(pg_world)
    events, jobs = _batch(None, "s1", "w1", T)
    [job] = pg_world.append(run_id, events, jobs=_for(run_id, jobs)).job_ids
    events, jobs = _batch("s1", "s2", "w1", T + 1)
    pg_world.append(run_id, events, jobs=_for(run_id, jobs), ack=[job])
    before = _rows(pg_world, run_id)
    done, cid, expected, target = "s2", "s3", None, run_id
    error: type[Exception] = EntityConflictError
    if case == "stale":
        expected, error = 3, StaleStateError  # the last result is at seq 6
    elif case == "ended step":
        done = "s1"
    elif case == "duplicate step":
        cid = "s2"
    elif case == "ended run":
        pg_world.append(run_id, [NewEvent("run_cancelled", None, {}, T + 2)])
        before = _rows(pg_world, run_id)
    else:
        target, error = uuid7(), RunNotFoundError
    events, jobs = _batch(done, cid, "w1", T + 3)
    with pytest.raises(error):
        pg_world.append(target, events, jobs=_for(target, jobs), ack=[job],
                        expected_result_seq=expected)
    assert _rows(pg_world, run_id) == before
