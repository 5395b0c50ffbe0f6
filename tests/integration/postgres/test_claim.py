"""Claims under concurrency: SKIP LOCKED claimers, one workflow activation per run."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest

from perdure.backends.postgres import PostgresWorld
from perdure.world import Job, NewEvent, NewJob, uuid7

from ._support import wait_for

pytestmark = pytest.mark.postgres


def _claim_all_at_once(world: PostgresWorld, claimers: int, limit: int) -> list[Job]:
    barrier = threading.Barrier(claimers)
    claimed: list[Job] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        barrier.wait()
        jobs = world.claim(f"w{i}", limit=limit, lease_seconds=30)
        with lock:
            claimed.extend(jobs)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return claimed


def test_each_job_goes_to_one_claimer(pg_world: PostgresWorld) -> None:
    run_ids = [uuid7() for _ in range(40)]
    for run_id in run_ids:
        pg_world.create_run("wf", "[]", run_id=run_id)  # one workflow job each
        pg_world.enqueue([NewJob("step", run_id, f"s{i}") for i in range(3)])
    claimed = _claim_all_at_once(pg_world, claimers=8, limit=25)
    assert len(claimed) == 160
    assert len({j.id for j in claimed}) == 160


def test_one_live_workflow_claim_per_run(pg_world: PostgresWorld) -> None:
    """Each run has an expired workflow lease *and* an unclaimed continuation, both
    claimable; however the claimers race, a run's workflow goes to one of them."""
    run_ids = [uuid7() for _ in range(30)]
    for run_id in run_ids:
        pg_world.create_run("wf", "[]", run_id=run_id)
    expired = pg_world.claim("dead-worker", limit=100, lease_seconds=0.001)
    assert len(expired) == 30
    expiry = max(j.lease_expires_at or 0.0 for j in expired)
    wait_for(lambda: time.time() > expiry + 0.01, what="the leases to expire")
    pg_world.enqueue([NewJob("workflow", run_id) for run_id in run_ids])
    claimed = _claim_all_at_once(pg_world, claimers=8, limit=10)
    per_run = Counter(j.run_id for j in claimed if j.kind == "workflow")
    assert per_run and max(per_run.values()) == 1
    assert len(pg_world.list_jobs()) == 60  # nothing lost
    # runs a claimer skipped (another held their claim lock) are claimable still
    late = pg_world.claim("late", limit=100, lease_seconds=30)
    assert {j.run_id for j in late} == set(run_ids) - set(per_run)
    assert Counter(j.run_id for j in late).most_common(1)[0][1] == 1 if late else True


def _step(world: PostgresWorld, run_id: str, cid: str, worker: str, ack: list[int],
          done: str | None = None) -> int:
    """Record ``done``'s result (if any) and create step ``cid``, claimed by ``worker``."""
    events = [] if done is None else [NewEvent("step_completed", done, {"output": 1})]
    events += [NewEvent("step_created", cid, {"name": "noop", "args": []}),
               NewEvent("step_started", cid, {"attempt": 1})]
    job = NewJob("step", run_id, cid, claimed_by=worker, lease_seconds=30)
    return world.append(run_id, events, jobs=[job], ack=ack).job_ids[0]


def _row_version(admin: psycopg.Connection[Any], job_id: int) -> tuple[Any, ...] | None:
    """The job row's xmin and ctid: both change whenever the row is written."""
    return admin.execute("SELECT xmin::text, ctid::text FROM perdure.jobs WHERE id = %s",
                         (job_id,)).fetchone()


def test_a_sequential_steps_job_carries_on_as_the_chains_lease(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any],
) -> None:
    """A step's end and its successor claimed by the same worker: the job row stays,
    same id (0016). The first carry-on clears its correlation id, the job is the
    chain's lease from then on, and later steps do not write it at all (0017). A
    job the worker does not hold is deleted and a new one made, as before."""
    run_id = uuid7()
    pg_world.create_run("wf", "[]", run_id=run_id)
    pg_world.ack("w0", [j.id for j in pg_world.claim("w0", limit=1, lease_seconds=30)])
    pg_world.append(run_id, [NewEvent("run_started")])
    first = _step(pg_world, run_id, "s1", "w1", [])
    before = pg_world.list_jobs(run_id=run_id)[0]
    second = _step(pg_world, run_id, "s2", "w1", [first], done="s1")
    assert second == first
    [job] = pg_world.list_jobs(run_id=run_id)
    assert (job.id, job.kind, job.correlation_id, job.claimed_by, job.lease_expires_at) == (
        first, "step", None, "w1", before.lease_expires_at)
    version = _row_version(admin, first)
    third = _step(pg_world, run_id, "s3", "w1", [second], done="s2")
    assert third == first and _row_version(admin, first) == version
    fourth = _step(pg_world, run_id, "s4", "w2", [third], done="s3")  # w1's job
    assert fourth != third
    assert [(j.id, j.correlation_id, j.claimed_by) for j in pg_world.list_jobs(run_id=run_id)] \
        == [(fourth, "s4", "w2")]
