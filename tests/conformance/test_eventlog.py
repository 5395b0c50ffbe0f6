"""The event log: create_run, append and its guards, projections, payloads."""

from __future__ import annotations

import threading
import time

import pytest

from perdure.backends import open_world
from perdure.errors import (
    EntityConflictError,
    HookTokenConflictError,
    RunNotFoundError,
    StaleStateError,
)
from perdure.world import (
    CHUNK_BYTES,
    CHUNK_EOF,
    NewEvent,
    NewJob,
    World,
    dumps,
    new_token,
    uuid7,
)

from ._support import ev, new_run, snapshot

# -- create_run ------------------------------------------------------------------


def test_create_run(world: World) -> None:
    run_id = uuid7()
    before = time.time()
    run, created = world.create_run("orders", '{"n": [1, 2]}', run_id=run_id,
                                    idempotency_key="k1")
    assert created
    assert (run.id, run.workflow_name, run.status, run.idempotency_key) == (
        run_id, "orders", "pending", "k1")
    assert (run.last_seq, run.result_seq, run.consumed_seq) == (1, 0, 0)
    assert run.started_at is None and run.completed_at is None
    assert before - 1 <= run.created_at <= time.time() + 1
    assert world.get_run(run_id) == run
    assert world.get_run_by_key("k1") == run
    [event] = world.list_events(run_id)
    assert (event.seq, event.event_type, event.correlation_id) == (1, "run_created", None)
    assert event.data == {"workflow": "orders", "input": {"n": [1, 2]}, "idempotency_key": "k1"}
    [job] = world.list_jobs(run_id=run_id)
    assert (job.kind, job.correlation_id, job.claimed_by) == ("workflow", None, None)
    assert job.due_at <= time.time()


def test_create_run_with_a_given_time(world: World) -> None:
    run, _ = world.create_run("wf", "null", run_id=uuid7(), created_at=1_000_000.5)
    assert run.created_at == 1_000_000.5
    assert world.list_events(run.id)[0].created_at == 1_000_000.5
    assert world.list_events(run.id)[0].data["input"] is None


def test_create_run_idempotency_key(world: World) -> None:
    first, created = world.create_run("wf", "1", run_id=uuid7(), idempotency_key="same")
    again, created_again = world.create_run("other", "2", run_id=uuid7(), idempotency_key="same")
    assert created and not created_again
    assert again == first
    assert len(world.list_runs().items) == 1
    assert len(world.list_jobs()) == 1
    assert world.get_run_by_key("nope") is None
    assert world.get_run(uuid7()) is None


def test_create_run_claimed(world: World) -> None:
    """A worker's own start: the same rows, the job claimed by it, nothing woken,
    and nobody else can claim it while the lease lives."""
    wake = world.notifier.subscribe("jobs")
    try:
        wake.wait(0)
        run, job = world.create_run_claimed("orders", '{"n": 1}', run_id=uuid7(),
                                            worker_id="w1", lease_seconds=30,
                                            idempotency_key="ck")
        assert job is not None
        assert (run.status, run.last_seq, run.idempotency_key) == ("pending", 1, "ck")
        assert (job.kind, job.run_id, job.correlation_id, job.claimed_by, job.attempts) == (
            "workflow", run.id, None, "w1", 1)
        assert job.lease_expires_at == pytest.approx(job.due_at + 30, abs=0.01)
        assert world.list_jobs(run_id=run.id) == [job]
        [event] = world.list_events(run.id)
        assert event.data == {"workflow": "orders", "input": {"n": 1}, "idempotency_key": "ck"}
        assert event.created_at == run.created_at
        assert world.claim("w2", limit=10, lease_seconds=30) == []
        assert not wake.wait(0)
        again, none = world.create_run_claimed("other", "2", run_id=uuid7(), worker_id="w2",
                                               lease_seconds=30, idempotency_key="ck")
        assert none is None and again == run
        assert len(world.list_jobs()) == 1
    finally:
        wake.close()


def test_create_run_started(world: World) -> None:
    """A run created with its first activation: one transaction, the append's events
    from seq 2, its jobs, consumed, and no workflow job; a used key writes nothing."""
    run_id, at = uuid7(), time.time() - 5
    wake = world.notifier.subscribe("jobs")
    try:
        wake.wait(0)
        run, result = world.create_run_started(
            "orders", '{"n": 1}', run_id=run_id, created_at=at, idempotency_key="sk",
            events=[ev("run_started"), ev("step_created", "s1"), ev("step_started", "s1"),
                    ev("step_created", "s2")],
            jobs=[NewJob("step", run_id, "s1", claimed_by="w1", lease_seconds=30),
                  NewJob("step", run_id, "s2")])
        assert result is not None
        assert [e.seq for e in result.events] == [2, 3, 4, 5] and result.last_seq == 5
        assert (run.id, run.status, run.last_seq, run.consumed_seq, run.created_at) == (
            run_id, "running", 5, 5, at)
        assert run == world.get_run(run_id)
        events = world.list_events(run_id)
        assert [e.event_type for e in events] == ["run_created", "run_started", "step_created",
                                                  "step_started", "step_created"]
        assert events[0].data == {"workflow": "orders", "input": {"n": 1},
                                  "idempotency_key": "sk"}
        assert events[0].created_at == at
        jobs = world.list_jobs(run_id=run_id)
        assert sorted(j.id for j in jobs) == sorted(result.job_ids)
        assert {(j.kind, j.correlation_id, j.claimed_by) for j in jobs} == {
            ("step", "s1", "w1"), ("step", "s2", None)}
        assert world.get_step(run_id, "s1").status == "running"
        assert wake.wait(0)  # s2 is claimable now
    finally:
        wake.close()
    again, none = world.create_run_started("other", "2", run_id=uuid7(), created_at=at,
                                           idempotency_key="sk", events=[ev("run_started")])
    assert none is None and again == world.get_run(run_id)
    assert len(world.list_runs().items) == 1


def test_create_run_started_that_ends_the_run(world: World) -> None:
    run_id = uuid7()
    ended = world.notifier.subscribe(f"run:{run_id}")
    try:
        run, result = world.create_run_started(
            "wf", "[]", run_id=run_id, created_at=time.time(), close_streams=True,
            events=[ev("run_started"), ev("run_completed", result=7)])
        assert result is not None and run.status == "completed"
        assert run.completed_at is not None and ended.wait(0)
        assert world.list_jobs(run_id=run_id) == []
    finally:
        ended.close()


@pytest.mark.parametrize("refused", ["step_completed", "hook_token"])
def test_a_refused_create_run_started_writes_nothing(world: World, refused: str) -> None:
    holder = new_run(world)
    token = new_token()
    world.create_event(holder, ev("hook_created", "h", token=token))
    run_id = uuid7()
    events = [ev("run_started"), ev("hook_created", "h", token=token)]
    error: type[Exception] = HookTokenConflictError
    if refused == "step_completed":
        events, error = [ev("run_started"), ev("step_completed", "nope")], EntityConflictError
    with pytest.raises(error):
        world.create_run_started("wf", "{}", run_id=run_id, created_at=time.time(),
                                 events=events, jobs=[NewJob("workflow", run_id)])
    assert world.get_run(run_id) is None
    assert world.list_events(run_id) == [] and world.list_jobs(run_id=run_id) == []


def test_create_run_twice_with_one_id(world: World) -> None:
    run_id = new_run(world, started=False)
    with pytest.raises(EntityConflictError):
        world.create_run("wf", "{}", run_id=run_id)
    assert len(world.list_events(run_id)) == 1


def test_concurrent_starts_with_one_key_make_one_run(backend_url: str, world: World) -> None:
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(6)
    lock = threading.Lock()

    def start() -> None:
        w = open_world(backend_url, migrate=False)
        try:
            barrier.wait()
            run, created = w.create_run("wf", "{}", run_id=uuid7(), idempotency_key="once")
            with lock:
                results.append((run.id, created))
        finally:
            w.close()

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({run_id for run_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(world.list_runs().items) == 1


# -- append: seq, uniqueness, guards -------------------------------------------------


def test_seq_is_dense_even_after_refused_writes(world: World) -> None:
    run_id = new_run(world)
    result = world.append(run_id, [ev("step_created", "a"), ev("step_created", "b")])
    assert [e.seq for e in result.events] == [3, 4]
    assert result.last_seq == 4
    for bad in ([ev("step_created", "a")], [ev("step_completed", "b")],
                [ev("step_created", "c"), ev("step_created", "c")]):
        with pytest.raises(EntityConflictError):
            world.append(run_id, bad)
    assert world.create_event(run_id, ev("step_started", "a")).seq == 5
    with pytest.raises(StaleStateError):
        world.append(run_id, [ev("step_started", "b")], expected_seq=4)
    world.append(run_id, [ev("step_started", "b"), ev("step_completed", "a")])
    seqs = [e.seq for e in world.list_events(run_id)]
    assert seqs == list(range(1, 8))
    assert world.get_run(run_id).last_seq == 7


@pytest.mark.parametrize("creation", ["step_created", "wait_created", "hook_created"])
def test_creation_events_are_unique(world: World, creation: str) -> None:
    run_id = new_run(world)
    world.create_event(run_id, ev(creation, "x"))
    before = snapshot(world, run_id)
    with pytest.raises(EntityConflictError):
        world.create_event(run_id, ev(creation, "x"))
    with pytest.raises(EntityConflictError):
        world.append(run_id, [ev(creation, "y"), ev(creation, "y")])
    assert snapshot(world, run_id) == before
    # The same correlation id in another run, or for another entity type, is fine.
    other = new_run(world)
    world.create_event(other, ev(creation, "x"))
    kinds = {"step_created", "wait_created", "hook_created"} - {creation}
    world.append(run_id, [ev(kind, "x") for kind in sorted(kinds)])


def test_a_second_step_created_is_refused_as_such(world: World) -> None:
    """Postgres finds it by the steps' primary key (migration 0017): the caller
    still gets EntityConflictError that says what was refused, and nothing is written."""
    run_id = new_run(world)
    world.append(run_id, [ev("step_created", "x"), ev("step_started", "x")])
    before = snapshot(world, run_id)
    with pytest.raises(EntityConflictError, match="step_created.*exists"):
        world.append(run_id, [ev("step_completed", "x"), ev("step_created", "x")])
    assert snapshot(world, run_id) == before


def test_run_created_cannot_be_appended(world: World) -> None:
    run_id = new_run(world, started=False)
    with pytest.raises(EntityConflictError):
        world.create_event(run_id, NewEvent("run_created"))


def test_unknown_run(world: World) -> None:
    with pytest.raises(RunNotFoundError):
        world.append(uuid7(), [ev("run_started")])
    with pytest.raises(RunNotFoundError):
        world.create_event(uuid7(), ev("step_created", "s"))


def test_expected_seq(world: World) -> None:
    run_id = new_run(world)  # seq 1 run_created, seq 2 run_started
    before = snapshot(world, run_id)
    for wrong in (1, 3):
        with pytest.raises(StaleStateError):
            world.append(run_id, [ev("step_created", "s")], expected_seq=wrong,
                         jobs=[NewJob("workflow", run_id)])
    assert snapshot(world, run_id) == before
    assert world.append(run_id, [ev("step_created", "s")], expected_seq=2).last_seq == 3


def test_expected_result_seq(world: World) -> None:
    run_id = new_run(world)
    world.append(run_id, [ev("step_created", "s"), ev("step_started", "s")])
    assert world.get_run(run_id).result_seq == 0
    with pytest.raises(StaleStateError):
        world.append(run_id, [ev("wait_created", "w")], expected_result_seq=4)
    world.append(run_id, [ev("wait_created", "w")], expected_result_seq=0)
    done = world.create_event(run_id, ev("step_completed", "s", result=1))
    assert world.get_run(run_id).result_seq == done.seq
    before = snapshot(world, run_id)
    with pytest.raises(StaleStateError):
        world.append(run_id, [ev("wait_completed", "w")], expected_result_seq=0)
    assert snapshot(world, run_id) == before
    # Only result events move result_seq.
    world.append(run_id, [ev("hook_created", "h")], expected_result_seq=done.seq)
    received = world.create_event(run_id, ev("hook_received", "h", payload=1))
    assert world.get_run(run_id).result_seq == received.seq
    waited = world.create_event(run_id, ev("wait_completed", "w"))
    assert world.get_run(run_id).result_seq == waited.seq
    world.append(run_id, [ev("step_created", "f"), ev("step_started", "f"),
                          ev("step_failed", "f")])
    assert world.get_run(run_id).result_seq == world.get_run(run_id).last_seq


def test_consumed(world: World) -> None:
    run_id = new_run(world)
    world.append(run_id, [ev("step_created", "s"), ev("step_started", "s"),
                          ev("step_completed", "s")])
    run = world.get_run(run_id)
    assert run.consumed_seq == 0 and run.result_seq == 5
    result = world.append(run_id, [ev("step_created", "t")], consumed=True)
    assert world.get_run(run_id).consumed_seq == result.last_seq == 6
    world.append(run_id, [ev("step_started", "t")])
    assert world.get_run(run_id).consumed_seq == 6


def test_jobs_and_acks_commit_with_the_events(world: World) -> None:
    run_id = new_run(world)
    [wf_job] = world.claim("w1", limit=10, lease_seconds=30)
    result = world.append(
        run_id, [ev("step_created", "s")],
        jobs=[NewJob("step", run_id, "s"), NewJob("workflow", run_id, due_at=time.time() + 60)],
        ack=[wf_job.id, 987654],  # a job already gone is fine
    )
    jobs = world.list_jobs(run_id=run_id)
    assert sorted(j.id for j in jobs) == sorted(result.job_ids)
    assert {(j.kind, j.correlation_id) for j in jobs} == {("step", "s"), ("workflow", None)}


def test_a_refused_append_writes_no_job_ack_or_eof(world: World) -> None:
    run_id = new_run(world)
    [wf_job] = world.claim("w1", limit=10, lease_seconds=30)
    world.write_chunks(run_id, "out", [(CHUNK_BYTES, b"x")])
    before = snapshot(world, run_id)
    with pytest.raises(EntityConflictError):
        world.append(run_id, [ev("step_started", "nope")], jobs=[NewJob("step", run_id, "z")],
                     ack=[wf_job.id], consumed=True, close_streams=True)
    assert snapshot(world, run_id) == before
    assert not world.stream_info(run_id, "out").closed


def test_close_streams(world: World) -> None:
    run_id = new_run(world)
    world.write_chunks(run_id, "a", [(CHUNK_BYTES, b"1"), (CHUNK_BYTES, b"2")])
    world.write_chunks(run_id, "b", [(CHUNK_BYTES, b"1")])
    world.close_stream(run_id, "b")
    other = new_run(world)
    world.write_chunks(other, "a", [(CHUNK_BYTES, b"1")])
    world.append(run_id, [ev("run_completed", result=None)], close_streams=True)
    a = world.read_chunks(run_id, "a", start=0)
    b = world.read_chunks(run_id, "b", start=0)
    assert [(c.index, c.kind) for c in a] == [(0, CHUNK_BYTES), (1, CHUNK_BYTES), (2, CHUNK_EOF)]
    assert [(c.index, c.kind) for c in b] == [(0, CHUNK_BYTES), (1, CHUNK_EOF)]
    assert not world.stream_info(other, "a").closed


# -- projections -------------------------------------------------------------------


def test_projection_fields(world: World) -> None:
    run_id = new_run(world, started=False)
    world.create_event(run_id, NewEvent("run_started", created_at=50.0))
    assert world.get_run(run_id).started_at == 50.0
    world.append(run_id, [NewEvent("step_created", "s", {"name": "charge"}, created_at=100.0)])
    step = world.get_step(run_id, "s")
    assert (step.name, step.status, step.attempt, step.created_at) == (
        "charge", "pending", 0, 100.0)
    assert step.started_at is None and step.retry_after is None
    world.append(run_id, [NewEvent("step_started", "s", created_at=101.0),
                          NewEvent("step_retrying", "s", {"retry_after": 200.0}, 102.0),
                          NewEvent("step_started", "s", created_at=203.0)])
    step = world.get_step(run_id, "s")
    assert (step.status, step.attempt, step.started_at, step.retry_after) == (
        "running", 2, 101.0, 200.0)
    world.append(run_id, [NewEvent("step_completed", "s", {"result": 1}, created_at=204.0)])
    assert world.get_step(run_id, "s").completed_at == 204.0
    assert world.get_step(run_id, "missing") is None

    world.append(run_id, [NewEvent("wait_created", "w", {"resume_at": 300.0}, created_at=110.0)])
    [wait] = world.list_waits(run_id).items
    assert (wait.status, wait.resume_at, wait.created_at, wait.completed_at) == (
        "waiting", 300.0, 110.0, None)
    world.append(run_id, [NewEvent("wait_completed", "w", created_at=301.0)])
    assert world.list_waits(run_id).items[0].completed_at == 301.0

    token = new_token()
    world.append(run_id, [NewEvent("hook_created", "h", {"token": token, "webhook": True},
                                   created_at=120.0)])
    hook = world.get_hook_by_token(token)
    assert (hook.run_id, hook.correlation_id, hook.status, hook.is_webhook, hook.created_at) == (
        run_id, "h", "active", True, 120.0)
    world.append(run_id, [ev("hook_received", "h", payload=[1])])
    assert world.get_hook_by_token(token).status == "active"
    world.append(run_id, [NewEvent("hook_disposed", "h", created_at=130.0)])
    assert world.get_hook_by_token(token) is None
    assert world.list_hooks(run_id=run_id).items[0].disposed_at == 130.0

    world.append(run_id, [NewEvent("run_failed", data={"error": "x"}, created_at=400.0)])
    run = world.get_run(run_id)
    assert (run.status, run.completed_at) == ("failed", 400.0)
    assert run.updated_at >= run.created_at


def test_hook_tokens(world: World) -> None:
    run_id = new_run(world)
    other = new_run(world)
    token = new_token()
    world.create_event(run_id, ev("hook_created", "h", token=token))
    before = snapshot(world, other)
    with pytest.raises(HookTokenConflictError):
        world.create_event(other, ev("hook_created", "h2", token=token))
    with pytest.raises(HookTokenConflictError):
        world.create_event(run_id, ev("hook_created", "h3", token=token))
    assert snapshot(world, other) == before
    assert world.get_hook_by_token(token).run_id == run_id
    world.create_event(run_id, ev("hook_disposed", "h"))
    world.create_event(other, ev("hook_created", "h2", token=token))  # free again
    assert world.get_hook_by_token(token).run_id == other
    assert world.get_hook_by_token(new_token()) is None


def test_list_events(world: World) -> None:
    run_id = new_run(world)
    world.append(run_id, [ev("step_created", "a"), ev("wait_created", "w"),
                          ev("step_created", "b"), ev("step_started", "a")])
    events = world.list_events(run_id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(e.run_id == run_id for e in events)
    assert [e.seq for e in world.list_events(run_id, after_seq=3)] == [4, 5, 6]
    assert [e.seq for e in world.list_events(run_id, after_seq=1, limit=2)] == [2, 3]
    created = world.list_events(run_id, types=["step_created"])
    assert [(e.seq, e.correlation_id) for e in created] == [(3, "a"), (5, "b")]
    assert world.list_events(run_id, after_seq=6) == []
    assert world.list_events(uuid7()) == []


# -- payloads ----------------------------------------------------------------------

ODD_STRINGS = ["nul\u0000inside", "\u0000", "emoji \U0001F600 \U00010348", "lone \ud800 half",
               "quote \" back \\ slash", "", "日本語"]


def test_payloads_round_trip(world: World) -> None:
    data = {"strings": ODD_STRINGS, "keys": {s: s for s in ODD_STRINGS},
            "numbers": [0, -1, 2**53, 1.5, 1e-300], "nested": {"a": [None, True, False, {}]}}
    run, _ = world.create_run("wf", dumps(data), run_id=uuid7())
    assert world.list_events(run.id)[0].data["input"] == data
    world.create_event(run.id, ev("run_started"))
    result = world.append(run.id, [ev("step_created", "s\U0001F600", **data)])
    assert result.events[0].data == {"name": "step", **data}
    stored = world.list_events(run.id)[-1]
    assert stored.correlation_id == "s\U0001F600"
    assert stored.data == {"name": "step", **data}
    assert world.get_step(run.id, "s\U0001F600") is not None


def test_ten_megabyte_payloads(world: World) -> None:
    big = ("x" * 1000 + "\u0000\U0001F600") * 10_000  # 10 M characters
    run, _ = world.create_run("wf", dumps({"big": big}), run_id=uuid7())
    world.append(run.id, [ev("run_started"), ev("step_created", "s"), ev("step_started", "s"),
                          ev("step_completed", "s", result=big)])
    events = world.list_events(run.id)
    assert events[0].data["input"]["big"] == big
    assert events[-1].data["result"] == big


# -- wake-ups --------------------------------------------------------------------


def test_the_end_of_a_run_wakes_its_key(world: World) -> None:
    run_id = new_run(world)
    sub = world.notifier.subscribe(f"run:{run_id}")
    try:
        world.append(run_id, [ev("step_created", "s")])
        world.append(run_id, [ev("run_cancelled")])
        assert sub.wait(5)
    finally:
        sub.close()


def test_wake_all(world: World) -> None:
    subs = [world.notifier.subscribe(key) for key in ("jobs", "run:x", "stream:x:y")]
    try:
        world.notifier.wake_all()
        assert all(sub.wait(5) for sub in subs)
    finally:
        for sub in subs:
            sub.close()
