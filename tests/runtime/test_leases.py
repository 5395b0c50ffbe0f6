"""The heartbeat's report of lost leases, on both backends: a job this worker has
just acknowledged is not lost; a job another worker took over is."""

from __future__ import annotations

import time
from typing import Any

from perdure._leases import Heartbeat
from perdure.testing import wait_for
from perdure.world import uuid7


def _claimed(world: Any, worker: str, lease_seconds: float = 30.0) -> tuple[int, str]:
    run_id = uuid7()
    world.create_run("wf", "[]", run_id=run_id)  # with its workflow job
    [job] = world.claim(worker, limit=1, lease_seconds=lease_seconds)
    assert job.run_id == run_id
    return job.id, run_id


def _lost_after_a_beat(world: Any, job_id: int, run_id: str) -> int:
    """One beat of w1's heartbeat holding ``job_id``; the leases it reports lost."""
    beat = Heartbeat(world, "w1", 30.0, lambda: {job_id: run_id}, lambda: None)
    beat.beat()
    return beat.lost


def test_a_job_acknowledged_before_its_renewal_is_not_lost(world: Any) -> None:
    """The ack committed, the worker has not yet struck the job from its list: the
    renewal misses it, and it is not reported (the race behind the old false alarm)."""
    job_id, run_id = _claimed(world, "w1")
    world.ack("w1", [job_id])
    assert _lost_after_a_beat(world, job_id, run_id) == 0


def test_a_job_another_worker_took_is_lost(world: Any) -> None:
    job_id, run_id = _claimed(world, "w1", lease_seconds=0.05)
    expiry = world.list_jobs(run_id=run_id)[0].lease_expires_at
    wait_for(lambda: time.time() > expiry + 0.01, what="the lease to expire")
    [taken] = world.claim("w2", limit=1, lease_seconds=30)
    assert taken.id == job_id
    assert _lost_after_a_beat(world, job_id, run_id) == 1


def test_a_held_job_is_renewed_not_lost(world: Any) -> None:
    job_id, run_id = _claimed(world, "w1", lease_seconds=5)
    before = world.list_jobs(run_id=run_id)[0].lease_expires_at
    assert _lost_after_a_beat(world, job_id, run_id) == 0
    after = world.list_jobs(run_id=run_id)[0].lease_expires_at
    assert after > before
