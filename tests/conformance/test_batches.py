"""Batches: ``append_many`` and ``create_runs``, several writes in one transaction,
all of them or none, each one writing exactly what it would alone; and
``claim_with_logs``, a claim that brings the claimed runs' logs along."""

from __future__ import annotations

import pytest

from perdure.errors import EntityConflictError, RunNotFoundError, StaleStateError
from perdure.world import AppendRequest, CreateRequest, NewJob, World, uuid7

from ._support import ev, new_run, snapshot


def _finish_one_step(run_id: str, **kwargs: object) -> AppendRequest:
    return AppendRequest(run_id, [ev("step_created", "s1"), ev("step_started", "s1"),
                                  ev("step_completed", "s1", output=1),
                                  ev("run_completed", output=1)], **kwargs)  # type: ignore[arg-type]


def test_append_many_writes_each_append_as_append_would(world: World) -> None:
    alone, first, second = new_run(world), new_run(world), new_run(world)
    expected = world.append(alone, _finish_one_step(alone).events)
    job = world.enqueue([NewJob("workflow", second)])[0]

    results = world.append_many([
        _finish_one_step(first, expected_result_seq=0, consumed=True, close_streams=True),
        AppendRequest(second, [ev("step_created", "s1")], ack=[job],
                      jobs=[NewJob("step", second, "s1")]),
    ])

    assert [r.last_seq for r in results] == [expected.last_seq, 3]
    assert [(e.seq, e.event_type) for e in results[0].events] == [
        (e.seq, e.event_type) for e in expected.events]
    assert [(e.run_id, e.correlation_id) for e in results[1].events] == [(second, "s1")]
    assert world.list_jobs(run_id=second)[0].id == results[1].job_ids[0]
    assert [j.kind for j in world.list_jobs(run_id=second)] == ["step"]  # the ack applied
    finished = world.get_run(first)
    assert finished is not None and finished.status == "completed"
    assert finished.consumed_seq == finished.last_seq == expected.last_seq
    assert [e.event_type for e in world.list_events(first)] == [
        e.event_type for e in world.list_events(alone)]
    step = world.get_step(first, "s1")
    assert step is not None and (step.status, step.attempt) == ("completed", 1)


def test_appends_to_one_run_in_one_batch_apply_in_order(world: World) -> None:
    run_id = new_run(world)
    created, completed = world.append_many([
        AppendRequest(run_id, [ev("step_created", "s1"), ev("step_started", "s1")]),
        AppendRequest(run_id, [ev("step_completed", "s1", output=2)], expected_result_seq=0),
    ])
    assert (created.last_seq, completed.last_seq) == (4, 5)
    assert [e.seq for e in completed.events] == [5]
    run = world.get_run(run_id)
    assert run is not None and run.result_seq == 5


@pytest.mark.parametrize("refusal", ["illegal", "stale", "unknown-run"])
def test_a_refused_append_in_a_batch_writes_nothing_of_any(world: World, refusal: str) -> None:
    runs = [new_run(world) for _ in range(3)]
    before = [snapshot(world, r) for r in runs]
    bad = {
        "illegal": AppendRequest(runs[1], [ev("step_completed", "nope", output=1)]),
        "stale": AppendRequest(runs[1], [ev("step_created", "s1")], expected_result_seq=7),
        "unknown-run": AppendRequest(uuid7(), [ev("step_created", "s1")]),
    }[refusal]
    error = {"illegal": EntityConflictError, "stale": StaleStateError,
             "unknown-run": RunNotFoundError}[refusal]
    with pytest.raises(error):
        world.append_many([_finish_one_step(runs[0]), bad, _finish_one_step(runs[2])])
    assert [snapshot(world, r) for r in runs] == before


def test_append_many_wakes_what_each_append_would(world: World) -> None:
    first, second = new_run(world), new_run(world)
    subs = [world.notifier.subscribe(k) for k in (f"run:{first}", f"run:{second}", "jobs")]
    try:
        for sub in subs:
            sub.wait(0)
        world.append_many([_finish_one_step(first),
                           AppendRequest(second, [ev("step_created", "s1")],
                                         jobs=[NewJob("step", second, "s1")])])
        ended_first, ended_second, jobs = (sub.wait(5 if i != 1 else 0.2)
                                           for i, sub in enumerate(subs))
        assert ended_first and not ended_second and jobs
    finally:
        for sub in subs:
            sub.close()


def test_an_empty_batch_writes_nothing(world: World) -> None:
    assert world.append_many([]) == []
    assert world.create_runs([]) == []


def test_create_runs(world: World) -> None:
    ids = [uuid7() for _ in range(3)]
    wake = world.notifier.subscribe("jobs")
    try:
        wake.wait(0)
        made = world.create_runs([
            CreateRequest("orders", "[1]", ids[0]),
            CreateRequest("orders", "[2]", ids[1], idempotency_key="k"),
            CreateRequest("other", "[3]", ids[2], idempotency_key="k"),
        ])
        assert wake.wait(5)
    finally:
        wake.close()
    assert [(r.id, created) for r, created in made] == [
        (ids[0], True), (ids[1], True), (ids[1], False)]
    assert made[2][0] == made[1][0]
    assert world.get_run(ids[2]) is None
    for run_id, arg in ((ids[0], 1), (ids[1], 2)):
        [event] = world.list_events(run_id)
        assert event.event_type == "run_created" and event.data is not None
        assert event.data["input"] == [arg]
        assert [j.kind for j in world.list_jobs(run_id=run_id)] == ["workflow"]
    alone, _ = world.create_run("orders", "[1]", run_id=uuid7())
    assert (made[0][0].status, made[0][0].last_seq) == (alone.status, alone.last_seq)


def test_create_runs_with_a_used_key_returns_that_run(world: World) -> None:
    first, _ = world.create_run("orders", "[1]", run_id=uuid7(), idempotency_key="used")
    fresh = uuid7()
    (again, created), (new, made) = world.create_runs([
        CreateRequest("orders", "[2]", uuid7(), "used"), CreateRequest("orders", "[3]", fresh)])
    assert again == first and not created
    assert new.id == fresh and made


def test_claim_with_logs(world: World) -> None:
    short, long_, stepping = new_run(world), new_run(world), new_run(world)
    world.append(long_, [ev("step_created", f"s{i}") for i in range(5)])
    world.append(stepping, [ev("step_created", "s1")], jobs=[NewJob("step", stepping, "s1")])
    jobs, logs = world.claim_with_logs("w1", limit=10, lease_seconds=30, log_limit=4)
    assert sorted((j.kind, j.run_id) for j in jobs) == sorted(
        [("workflow", short), ("workflow", long_), ("workflow", stepping),
         ("step", stepping)])
    assert all(j.claimed_by == "w1" for j in jobs)
    assert set(logs) == {short, long_, stepping}
    assert logs[short] == world.list_events(short)
    assert logs[long_] == world.list_events(long_)[:4]
    assert world.claim_with_logs("w2", limit=10, lease_seconds=30, log_limit=4) == ([], {})
