"""Nothing stranded: re-enqueue runs that have work to do and no job.

Runs at worker start (in the background, so a slow sweep never delays the start)
and then periodically. Page by page, each run on its own: a run that cannot be
re-enqueued is logged and skipped. Enqueueing is idempotent (one unclaimed
workflow job per run, one job per step), so several workers sweeping at once is
harmless.
"""

from __future__ import annotations

import logging
import time

from .world import STEP_TERMINAL, NewJob, World

logger = logging.getLogger(__name__)

PAGE = 100


def sweep(world: World) -> int:
    """One pass over every stranded run; returns how many were re-enqueued."""
    requeued, after = 0, None
    while True:
        run_ids = world.find_stranded_runs(after_id=after, limit=PAGE)
        for run_id in run_ids:
            try:
                requeue(world, run_id)
                requeued += 1
            except Exception:  # noqa: BLE001 - one bad run never stops the others
                logger.exception("could not re-enqueue run %s", run_id, extra={"run_id": run_id})
        if len(run_ids) < PAGE:
            return requeued
        after = run_ids[-1]


def requeue(world: World, run_id: str) -> None:
    now = time.time()
    have_jobs = {job.correlation_id for job in world.list_jobs(run_id=run_id) if job.kind == "step"}
    jobs = [NewJob("workflow", run_id)]
    for step in world.list_steps(run_id, limit=100_000).items:
        if step.status in STEP_TERMINAL or step.correlation_id in have_jobs:
            continue
        due = step.retry_after if step.status == "pending" and step.retry_after else now
        jobs.append(NewJob("step", run_id, step.correlation_id, due_at=max(due, now)))
    world.enqueue(jobs)
    logger.info("re-enqueued stranded run %s", run_id, extra={"run_id": run_id})
