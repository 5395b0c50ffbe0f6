"""The job queue: due times, leases, acks, reclaim, one live continuation per run,
and the sweep that finds stranded runs."""

from __future__ import annotations

import time

from perdure.world import NewJob, World

from ._support import ev, new_run, poll


def _fresh_run(world: World, *, started: bool = True) -> str:
    """A run with no job at all (its start job claimed and acknowledged)."""
    run_id = new_run(world, started=started)
    claimed = world.claim("setup", limit=100, lease_seconds=30)
    world.ack("setup", [j.id for j in claimed if j.run_id == run_id])
    world.release("setup", [j.id for j in claimed if j.run_id != run_id])
    assert world.list_jobs(run_id=run_id) == []
    return run_id


def test_claim_lease_and_ack(world: World) -> None:
    run_id = _fresh_run(world)
    assert world.enqueue([]) == []
    [job_id] = world.enqueue([NewJob("workflow", run_id)])
    before = time.time()
    [job] = world.claim("w1", limit=10, lease_seconds=30)
    assert (job.id, job.kind, job.run_id, job.claimed_by, job.attempts) == (
        job_id, "workflow", run_id, "w1", 1)
    assert before + 29 <= job.lease_expires_at <= time.time() + 31
    assert world.claim("w2", limit=10, lease_seconds=30) == []
    assert world.list_jobs(run_id=run_id) == [job]
    world.ack("w1", [job.id])
    assert world.list_jobs(run_id=run_id) == []
    world.ack("w1", [job.id])  # gone already: fine


def test_not_claimable_before_due(world: World) -> None:
    run_id = _fresh_run(world)
    due = time.time() + 0.3
    [job_id] = world.enqueue([NewJob("workflow", run_id, due_at=due)])
    assert world.claim("w1", limit=10, lease_seconds=30) == []
    [job] = poll(lambda: world.claim("w1", limit=10, lease_seconds=30), timeout=10)
    assert job.id == job_id and time.time() >= due
    assert job.due_at == due


def test_extend_leases(world: World) -> None:
    run_id = _fresh_run(world)
    world.enqueue([NewJob("step", run_id, "s"), NewJob("step", run_id, "t")])
    jobs = world.claim("w1", limit=10, lease_seconds=5)
    ids = sorted(j.id for j in jobs)
    assert world.extend_leases("w2", ids, 60) == []
    assert sorted(world.extend_leases("w1", [*ids, 999_999], 60)) == ids
    for job in world.list_jobs(run_id=run_id):
        assert job.lease_expires_at >= time.time() + 50


def test_release(world: World) -> None:
    run_id = _fresh_run(world)
    world.enqueue([NewJob("step", run_id, "s")])
    [job] = world.claim("w1", limit=10, lease_seconds=60)
    world.release("w2", [job.id])  # not the holder: nothing happens
    assert world.claim("w2", limit=10, lease_seconds=60) == []
    world.release("w1", [job.id])
    [again] = world.claim("w2", limit=10, lease_seconds=60)
    assert (again.id, again.claimed_by, again.attempts) == (job.id, "w2", 2)


def test_reclaim_after_the_lease_expires(world: World) -> None:
    run_id = _fresh_run(world)
    world.enqueue([NewJob("step", run_id, "s")])
    [job] = world.claim("w1", limit=10, lease_seconds=0.2)
    assert world.claim("w2", limit=10, lease_seconds=30) == []
    [again] = poll(lambda: world.claim("w2", limit=10, lease_seconds=30), timeout=10)
    assert (again.id, again.claimed_by, again.attempts) == (job.id, "w2", 2)
    assert world.extend_leases("w1", [job.id], 30) == []  # w1 lost it
    world.ack("w1", [job.id])  # the old holder's ack does not drop w2's claim
    world.ack("w2", [job.id])
    assert world.list_jobs(run_id=run_id) == []


def test_oldest_due_first_limit_and_kinds(world: World) -> None:
    run_id = _fresh_run(world)
    now = time.time()
    world.enqueue([NewJob("step", run_id, f"s{i}", due_at=now - i) for i in range(5)])
    world.enqueue([NewJob("workflow", run_id, due_at=now - 10)])
    assert world.claim("w1", limit=0, lease_seconds=30) == []
    steps = world.claim("w1", limit=2, lease_seconds=30, kinds=["step"])
    assert [j.correlation_id for j in steps] == ["s4", "s3"]
    [wf] = world.claim("w1", limit=5, lease_seconds=30, kinds=["workflow"])
    assert wf.kind == "workflow"
    rest = world.claim("w1", limit=10, lease_seconds=30)
    assert [j.correlation_id for j in rest] == ["s2", "s1", "s0"]


def test_one_unclaimed_workflow_job_per_run_keeps_the_earlier_due(world: World) -> None:
    run_id = _fresh_run(world)
    later, earlier = time.time() + 100, time.time() + 50
    [a] = world.enqueue([NewJob("workflow", run_id, due_at=later)])
    [b] = world.enqueue([NewJob("workflow", run_id, due_at=earlier)])
    [c] = world.enqueue([NewJob("workflow", run_id, due_at=later + 10)])
    result = world.append(run_id, [], jobs=[NewJob("workflow", run_id, due_at=later)])
    [job] = world.list_jobs(run_id=run_id)
    assert job.due_at == earlier
    assert a == b == c == job.id == result.job_ids[0]


def test_no_two_live_workflow_jobs_of_one_run(world: World) -> None:
    run_id = _fresh_run(world)
    world.enqueue([NewJob("workflow", run_id)])
    [first] = world.claim("w1", limit=10, lease_seconds=30)
    # A continuation enqueued while the run is being executed waits for it.
    world.append(run_id, [ev("step_created", "s")], jobs=[NewJob("workflow", run_id)])
    assert len(world.list_jobs(run_id=run_id)) == 2
    assert world.claim("w2", limit=10, lease_seconds=30) == []
    world.ack("w1", [first.id])
    [second] = world.claim("w2", limit=10, lease_seconds=30)
    assert second.kind == "workflow" and second.id != first.id


def test_an_expired_and_an_unclaimed_workflow_job_hand_out_one(world: World) -> None:
    run_id = _fresh_run(world)
    world.enqueue([NewJob("workflow", run_id)])
    [first] = world.claim("w1", limit=10, lease_seconds=0.2)
    world.enqueue([NewJob("workflow", run_id)])
    poll(lambda: world.list_jobs(run_id=run_id)[0].lease_expires_at < time.time() - 0.05)
    claimed = world.claim("w2", limit=10, lease_seconds=30)
    assert len(claimed) == 1
    assert world.claim("w3", limit=10, lease_seconds=30) == []
    world.ack("w2", [claimed[0].id])
    assert len(world.claim("w3", limit=10, lease_seconds=30)) == 1


def test_release_of_a_workflow_job_beside_an_unclaimed_one(world: World) -> None:
    run_id = _fresh_run(world)
    world.enqueue([NewJob("workflow", run_id)])
    [first] = world.claim("w1", limit=10, lease_seconds=30)
    world.enqueue([NewJob("workflow", run_id, due_at=time.time() + 3600)])
    world.release("w1", [first.id])
    jobs = world.list_jobs(run_id=run_id)
    assert [j.claimed_by for j in jobs] == [None]
    [job] = world.claim("w2", limit=10, lease_seconds=30)  # claimable at once
    assert job.run_id == run_id


def test_one_job_per_step(world: World) -> None:
    run_id = _fresh_run(world)
    [a] = world.enqueue([NewJob("step", run_id, "s")])
    [job] = world.claim("w1", limit=10, lease_seconds=60)
    later = time.time() + 100
    [b] = world.enqueue([NewJob("step", run_id, "s", due_at=later)])  # replaces due and claim
    [stored] = world.list_jobs(run_id=run_id)
    assert a == b == job.id == stored.id
    assert (stored.due_at, stored.claimed_by, stored.lease_expires_at) == (later, None, None)
    [c] = world.enqueue([NewJob("step", run_id, "s")])
    [again] = world.claim("w2", limit=10, lease_seconds=60)
    assert again.id == c == a
    world.enqueue([NewJob("step", run_id, "t")])
    assert len(world.list_jobs(run_id=run_id)) == 2


def test_enqueue_already_claimed(world: World) -> None:
    run_id = _fresh_run(world)
    [step_id, wf_id] = world.enqueue([
        NewJob("step", run_id, "s", claimed_by="me", lease_seconds=30),
        NewJob("workflow", run_id, claimed_by="me", lease_seconds=30),
    ])
    jobs = {j.id: j for j in world.list_jobs(run_id=run_id)}
    assert jobs[step_id].claimed_by == jobs[wf_id].claimed_by == "me"
    assert jobs[step_id].lease_expires_at >= time.time() + 25
    assert world.claim("other", limit=10, lease_seconds=30) == []
    assert sorted(world.extend_leases("me", [step_id, wf_id], 30)) == sorted([step_id, wf_id])
    world.ack("me", [step_id, wf_id])
    assert world.list_jobs(run_id=run_id) == []


def test_list_jobs(world: World) -> None:
    a, b = new_run(world), new_run(world)
    world.enqueue([NewJob("step", a, "s")])
    assert {j.run_id for j in world.list_jobs()} == {a, b}
    assert {(j.kind, j.correlation_id) for j in world.list_jobs(run_id=a)} == {
        ("workflow", None), ("step", "s")}
    ids = [j.id for j in world.list_jobs()]
    assert ids == sorted(ids)


def test_enqueue_wakes_jobs(world: World) -> None:
    run_id = _fresh_run(world)
    sub = world.notifier.subscribe("jobs")
    try:
        world.enqueue([NewJob("step", run_id, "s")])
        assert sub.wait(5)
        world.append(run_id, [ev("step_created", "t")], jobs=[NewJob("step", run_id, "t")])
        assert sub.wait(5)
        new_run(world)
        assert sub.wait(5)
    finally:
        sub.close()


def test_find_stranded_runs(world: World) -> None:
    now = time.time()
    pending = _fresh_run(world, started=False)
    step = _fresh_run(world)
    world.append(step, [ev("step_created", "s")])
    running_step = _fresh_run(world)
    world.append(running_step, [ev("step_created", "s"), ev("step_started", "s")])
    due_wait = _fresh_run(world)
    world.append(due_wait, [ev("wait_created", "w", resume_at=now - 1)])
    future_wait = _fresh_run(world)
    world.append(future_wait, [ev("wait_created", "w", resume_at=now + 3600),
                               ev("step_created", "s"), ev("step_started", "s"),
                               ev("step_completed", "s")], consumed=True)
    quiet_hook = _fresh_run(world)
    world.append(quiet_hook, [ev("hook_created", "h")])
    hook_payload = _fresh_run(world)
    world.append(hook_payload, [ev("hook_created", "h"), ev("hook_received", "h", payload=1)])
    live_job = _fresh_run(world)
    world.append(live_job, [ev("step_created", "s")])
    world.enqueue([NewJob("workflow", live_job, claimed_by="w", lease_seconds=60)])
    due_job = _fresh_run(world)
    world.append(due_job, [ev("step_created", "s")], jobs=[NewJob("step", due_job, "s")])
    ended = _fresh_run(world)
    world.append(ended, [ev("step_created", "s"), ev("run_cancelled")])
    nothing = _fresh_run(world)

    stranded = world.find_stranded_runs(after_id=None, limit=100)
    expected = sorted([pending, step, running_step, due_wait, hook_payload])
    assert stranded == expected
    assert world.find_stranded_runs(after_id=None, limit=2) == expected[:2]
    assert world.find_stranded_runs(after_id=expected[1], limit=2) == expected[2:4]
    assert world.find_stranded_runs(after_id=expected[-1], limit=100) == []
    # The clock is the caller's: an hour on, the timer is due too.
    later = world.find_stranded_runs(after_id=None, limit=100, now=now + 7200)
    assert future_wait in later and nothing not in later and quiet_hook not in later
    # A due job for the run takes it off the list; so does consuming the payload.
    world.enqueue([NewJob("workflow", step)])
    world.append(hook_payload, [], consumed=True)
    assert world.find_stranded_runs(after_id=None, limit=100) == sorted(
        [pending, running_step, due_wait])


def test_tidy_queue_keeps_every_live_job(world: World) -> None:
    run_id = _fresh_run(world)
    done = world.enqueue([NewJob("step", run_id, f"s{i}") for i in range(5)])
    kept = world.enqueue([NewJob("step", run_id, f"k{i}") for i in range(3)])
    claimed = world.claim("w", limit=5, lease_seconds=30)
    world.ack("w", [j.id for j in claimed])
    world.tidy_queue()
    world.tidy_queue()  # again, and with nothing to do: fine
    assert sorted(j.id for j in claimed) == sorted(done)
    assert sorted(j.id for j in world.list_jobs(run_id=run_id)) == sorted(kept)
    assert sorted(j.id for j in world.claim("w", limit=10, lease_seconds=30)) == sorted(kept)


def test_jobs_of_steps_created_in_the_append_come_back_in_order(world: World) -> None:
    """The ids an append returns follow its jobs, whatever the order of the steps'
    creation (Postgres inserts a fan-out's jobs with one statement, migration 0014),
    and an unclaimed one among them wakes the workers."""
    run_id = _fresh_run(world)
    cids = ["c", "a", "d", "b"]
    events = [ev("step_created", c) for c in sorted(cids)]
    jobs = [NewJob("step", run_id, c, claimed_by="w1" if c != "d" else None,
                   lease_seconds=30) for c in cids]
    sub = world.notifier.subscribe("jobs")
    try:
        result = world.append(run_id, events, jobs=jobs)
        assert sub.wait(5)  # "d" is unclaimed
    finally:
        sub.close()
    stored = {j.id: j for j in world.list_jobs(run_id=run_id)}
    assert [stored[i].correlation_id for i in result.job_ids] == cids
    assert [stored[i].claimed_by for i in result.job_ids] == ["w1", "w1", None, "w1"]
    assert [stored[i].attempts for i in result.job_ids] == [1, 1, 0, 1]
    # one more step of the same run, alone in its append
    [one] = world.append(run_id, [ev("step_created", "e")],
                         jobs=[NewJob("step", run_id, "e", claimed_by="w1")]).job_ids
    job = next(j for j in world.list_jobs(run_id=run_id) if j.id == one)
    assert (job.correlation_id, job.claimed_by, job.attempts) == ("e", "w1", 1)
    assert job.lease_expires_at is not None
