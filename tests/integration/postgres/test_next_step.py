"""perdure.append_next_step (migration 0018), perdure.append_last_step (0023) and
perdure.append_one_step_run (0024) write what append_events writes.

The sequential step's append, the append that ends a run with its last step, and
the append of a whole one-step run have functions of their own. These tests run the same
batches on two runs, one through ``World.append`` (which picks the function for
that shape of batch) and one through ``append_events``, and compare every row the
appends wrote; then they check that each refusal is the general path's.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from perdure.backends.postgres import PostgresWorld
from perdure.backends.postgres._db import Q, Retry
from perdure.backends.postgres._eventlog import (
    append_many_params,
    append_params,
    last_step_params,
    one_step_run_params,
)
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
             ack: list[int], expected_result_seq: int | None = None,
             close_streams: bool = False) -> list[int]:
    params = append_params(AppendRequest(run_id, events, None, expected_result_seq,
                                         _for(run_id, jobs), ack, True, close_streams))
    row = world._db.one("append_events", params, retry=Retry.NEVER)
    assert row is not None
    return list(row[2])


def _rows(world: PostgresWorld, run_id: str) -> tuple[Any, ...]:
    run = world.get_run(run_id)
    assert run is not None
    jobs = world.list_jobs(run_id=run_id)
    return (
        (run.status, run.last_seq, run.result_seq, run.consumed_seq, run.started_at,
         run.completed_at),
        [(e.seq, e.event_type, e.correlation_id, e.data, e.created_at)
         for e in world.list_events(run_id)],
        [(s.correlation_id, s.name, s.status, s.attempt, s.created_at, s.started_at,
          s.completed_at) for s in world.list_steps(run_id).items],
        [(j.kind, j.correlation_id, j.claimed_by, j.attempts) for j in jobs],
        [(i.stream, i.chunks, i.closed) for i in world.list_streams(run_id)],
    )


def _new_run(world: PostgresWorld) -> str:
    run_id = uuid7()
    world.create_run("wf", "[]", run_id=run_id, created_at=T)
    world.append(run_id, [NewEvent("run_started", None, {}, T)])
    return run_id


def test_a_chain_of_steps_writes_what_append_events_writes(
    pg_world: PostgresWorld, queries: list[str],
) -> None:
    fast, general = _new_run(pg_world), _new_run(pg_world)
    queries.clear()
    held = {fast: [], general: []}  # type: dict[str, list[int]]
    batches = [(None, "s1", "w1", "step_completed"), ("s1", "s2", "w1", "step_completed"),
               ("s2", "s3", "w1", "step_completed"), ("s3", "s4", "w1", "step_failed"),
               ("s4", "s5", "w2", "step_completed")]  # the last: w1's job, acked by w2
    for i, (done, cid, worker, kind) in enumerate(batches):
        events, jobs = _batch(done, cid, worker, T + i, kind)
        queries.clear()
        held[fast] = pg_world.append(fast, events, jobs=_for(fast, jobs), ack=held[fast],
                                     consumed=True).job_ids
        assert queries == (["append_next_step"] if done else ["append_events"])
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


def _at_last_step(world: PostgresWorld, streams: bool) -> tuple[str, int]:
    """A running run with step s1 started (its job claimed by w1), maybe a stream open."""
    run_id = _new_run(world)
    events, jobs = _batch(None, "s1", "w1", T)
    [job] = world.append(run_id, events, jobs=_for(run_id, jobs)).job_ids
    if streams:
        world.write_chunks(run_id, "progress", [(0, b"half")])
    return run_id, job


def _last(kind: str = "step_completed", done: str = "s1") -> list[NewEvent]:
    end = "run_completed" if kind == "step_completed" else "run_failed"
    return [NewEvent(kind, done, {"output": done}, T + 1),
            NewEvent(end, None, {"result": 1}, T + 2)]


@pytest.mark.parametrize("kind", ["step_completed", "step_failed"])
@pytest.mark.parametrize("streams", [False, True], ids=["no stream", "a stream"])
def test_a_runs_last_step_writes_what_append_events_writes(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any], queries: list[str],
    kind: str, streams: bool,
) -> None:
    (fast, fast_job), (general, general_job) = (_at_last_step(pg_world, streams)
                                                 for _ in range(2))
    admin.execute("LISTEN perdure_runs")
    queries.clear()
    closed = pg_world.append(fast, _last(kind), ack=[fast_job], expected_result_seq=0,
                             consumed=True, close_streams=True)
    assert queries == ["append_last_step"]
    _general(pg_world, general, _last(kind), [], [general_job], expected_result_seq=0,
             close_streams=True)
    assert _rows(pg_world, fast) == _rows(pg_world, general)
    assert closed.job_ids == []
    assert [j.kind for j in pg_world.list_jobs(run_id=fast)] == ["workflow"]  # the create's
    heard = [n.payload for n in admin.notifies(timeout=5, stop_after=2)]
    assert heard == [f"run:{fast}", f"run:{general}"]


@pytest.mark.parametrize("case", ["stale", "ended step", "unknown step", "ended run",
                                  "unknown run"])
def test_a_refused_last_step_is_refused_as_append_events_refuses_it(
    pg_world: PostgresWorld, case: str,
) -> None:
    run_id, job = _at_last_step(pg_world, streams=False)
    before = _rows(pg_world, run_id)
    done, expected, target = "s1", None, run_id
    error: type[Exception] = EntityConflictError
    if case == "stale":
        expected, error = 1, StaleStateError  # no result yet: the result seq is 0
    elif case == "ended step":  # s1 completed, s2 running on the same job (the chain's)
        events, jobs = _batch("s1", "s2", "w1", T + 0.5)
        pg_world.append(run_id, events, jobs=_for(run_id, jobs), ack=[job])
        before = _rows(pg_world, run_id)
    elif case == "unknown step":
        done = "s0"
    elif case == "ended run":
        pg_world.append(run_id, [NewEvent("run_cancelled", None, {}, T + 2)])
        before = _rows(pg_world, run_id)
    else:
        target, error = uuid7(), RunNotFoundError
    with pytest.raises(error):
        pg_world.append(target, _last(done=done), ack=[job], expected_result_seq=expected,
                        close_streams=True)
    assert _rows(pg_world, run_id) == before


def test_a_last_step_acking_a_workflow_job_takes_the_general_path(
    pg_world: PostgresWorld, queries: list[str],
) -> None:
    """The acked job is the run's workflow job, not the step's: append_events' ack
    (its held-back check included) writes the batch, as if called itself."""
    (fast, _), (general, _) = (_at_last_step(pg_world, streams=False) for _ in range(2))
    fast_job, general_job = (
        next(j.id for j in pg_world.list_jobs(run_id=r) if j.kind == "workflow")
        for r in (fast, general))
    queries.clear()
    pg_world.append(fast, _last(), ack=[fast_job], consumed=True, close_streams=True)
    assert queries == ["append_last_step"]
    _general(pg_world, general, _last(), [], [general_job], close_streams=True)
    assert _rows(pg_world, fast) == _rows(pg_world, general)
    assert [j.kind for j in pg_world.list_jobs(run_id=fast)] == ["step"]


def test_append_last_step_called_with_other_events_is_refused_as_append_events_refuses_them(
    pg_world: PostgresWorld,
) -> None:
    """Called from SQL with events that are not a step's end and a run's end, the
    function writes nothing itself: the general path refuses them."""
    run_id, job = _at_last_step(pg_world, streams=False)
    before = _rows(pg_world, run_id)
    params = last_step_params(AppendRequest(run_id, _last(), ack=[job]))
    assert params is not None
    params[7] = "run_started"  # the run's end, as a run that is running cannot take
    with pytest.raises(EntityConflictError):
        pg_world._db.one("append_last_step", params, retry=Retry.NEVER)
    assert _rows(pg_world, run_id) == before


# -- a whole one-step run in one append (0024) ---------------------------------------


def _claimed_new_run(world: PostgresWorld, held_back: bool = False) -> tuple[str, int]:
    """A pending run whose job w1 has claimed; ``held_back``: with a second workflow
    job waiting behind that claim (a wake-up that arrived meanwhile)."""
    run_id = uuid7()
    world.create_run("wf", "[]", run_id=run_id, created_at=T)
    [job] = world.claim("w1", limit=1, lease_seconds=30)
    assert job.run_id == run_id
    if held_back:
        world.enqueue([NewJob("workflow", run_id)])
    return run_id, job.id


def _whole(kind: str = "step_completed", cid: str = "s1",
           started: str | None = None) -> list[NewEvent]:
    end = "run_completed" if kind == "step_completed" else "run_failed"
    return [NewEvent("run_started", None, {"seed": 1}, T),
            NewEvent("step_created", "s1", {"name": "noop", "args": [1]}, T + 0.1),
            NewEvent("step_started", started or "s1", {"attempt": 1}, T + 0.2),
            NewEvent(kind, cid, {"output": 1}, T + 0.3),
            NewEvent(end, None, {"result": 1}, T + 0.4)]


def _many_counting(pg_url: str, requests: list[AppendRequest]) -> int:
    """``append_many`` called on a connection of its own that counts function
    calls: how many times it called append_one_step_run."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET track_functions = 'all'")
        conn.execute(Q["append_many"], append_many_params(requests)).fetchall()
        row = conn.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions"
                           " WHERE funcname = 'append_one_step_run'").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("kind", ["step_completed", "step_failed"])
@pytest.mark.parametrize("held_back", [False, True], ids=["alone", "a job held back"])
def test_a_whole_run_writes_what_append_events_writes(
    pg_world: PostgresWorld, pg_url: str, admin: psycopg.Connection[Any],
    queries: list[str], kind: str, held_back: bool,
) -> None:
    """One run through World.append, one through append_many, one through
    append_events: the same rows, and the same notifications (the run's end; and
    ``jobs`` when the ack frees a workflow job held back behind it)."""
    (fast, fast_job), (many, many_job), (general, general_job) = (
        _claimed_new_run(pg_world, held_back) for _ in range(3))
    pg_world.write_chunks(fast, "progress", [(0, b"half")])
    pg_world.write_chunks(many, "progress", [(0, b"half")])
    pg_world.write_chunks(general, "progress", [(0, b"half")])
    admin.execute("LISTEN perdure_runs")
    admin.execute("LISTEN perdure")
    queries.clear()
    closed = pg_world.append(fast, _whole(kind), ack=[fast_job], expected_seq=1,
                             consumed=True, close_streams=True)
    assert queries == ["append_one_step_run"]
    assert closed.job_ids == [] and closed.last_seq == 6
    assert _many_counting(pg_url, [AppendRequest(many, _whole(kind), 1, None, [], [many_job],
                                                 True, True)]) == 1
    _general(pg_world, general, _whole(kind), [], [general_job], close_streams=True)
    assert _rows(pg_world, fast) == _rows(pg_world, many) == _rows(pg_world, general)
    assert [i.closed for i in pg_world.list_streams(fast)] == [True]
    runs = (fast, many, general)
    heard = [(n.channel, n.payload)
             for n in admin.notifies(timeout=5, stop_after=9 if held_back else 6)]
    assert [h for h in heard if h[0] == "perdure_runs"] == [
        ("perdure_runs", f"run:{r}") for r in runs]
    assert [h for h in heard if h[1].startswith("stream:")] == [
        ("perdure", f"stream:{r}:progress") for r in runs]
    assert heard.count(("perdure", "jobs")) == (3 if held_back else 0)


def test_append_many_sends_only_whole_runs_to_their_function(
    pg_world: PostgresWorld, pg_url: str,
) -> None:
    """Of a batch mixing a whole run, a run's first step and another whole run,
    the whole runs go to append_one_step_run and the answers keep their order."""
    (a, a_job), (b, b_job), (c, c_job) = (_claimed_new_run(pg_world) for _ in range(3))
    first_step = _whole()[:3]
    requests = [AppendRequest(a, _whole(), ack=[a_job], close_streams=True),
                AppendRequest(b, first_step, ack=[b_job],
                              jobs=[NewJob("step", b, "s1", claimed_by="w1")]),
                AppendRequest(c, _whole("step_failed"), ack=[c_job], close_streams=True)]
    assert _many_counting(pg_url, requests) == 2
    assert [pg_world.get_run(r).status for r in (a, b, c)] == [  # type: ignore[union-attr]
        "completed", "running", "failed"]


@pytest.mark.parametrize("case", ["stale", "running run", "ended run", "unknown run",
                                  "another run's job", "another step started",
                                  "another step ended"])
def test_a_refused_whole_run_is_refused_as_append_events_refuses_it(
    pg_world: PostgresWorld, case: str,
) -> None:
    """Each check that fails hands the batch to append_events: what it refuses is
    refused, with nothing written; what it takes (another run's job acked) it
    writes as it always did."""
    run_id, job = _claimed_new_run(pg_world)
    events, expected, target = _whole(), None, run_id
    error: type[Exception] | None = EntityConflictError
    if case == "stale":
        expected, error = 0, StaleStateError  # the run is at seq 1
    elif case == "running run":
        pg_world.append(run_id, [NewEvent("run_started", None, {}, T)])
    elif case == "ended run":
        pg_world.append(run_id, [NewEvent("run_cancelled", None, {}, T)])
    elif case == "unknown run":
        target, error = uuid7(), RunNotFoundError
    elif case == "another run's job":
        job, error = _claimed_new_run(pg_world)[1], None
    elif case == "another step started":
        events = _whole(started="s2")
    else:
        events = _whole(cid="s2")
    before = _rows(pg_world, run_id)
    params = one_step_run_params(AppendRequest(target, events, expected, None, [], [job],
                                               True, True))
    if case.startswith("another step"):
        assert params is None  # World.append sends it to append_events; SQL callers:
        params = one_step_run_params(AppendRequest(target, _whole(), expected, None, [],
                                                   [job], True, True))
        assert params is not None
        params[4] = [e.correlation_id for e in events]
    if error is None:
        pg_world._db.one("append_one_step_run", params, retry=Retry.NEVER)
        assert pg_world.get_run(run_id).status == "completed"  # type: ignore[union-attr]
        assert job not in [j.id for j in pg_world.list_jobs()]
        return
    with pytest.raises(error):
        pg_world._db.one("append_one_step_run", params, retry=Retry.NEVER)
    assert _rows(pg_world, run_id) == before
