"""Claims under concurrency: SKIP LOCKED claimers, one workflow activation per run."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from perdure.backends.postgres import PostgresWorld
from perdure.world import Job, NewJob, uuid7

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
