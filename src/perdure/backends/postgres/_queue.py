"""The job queue: continuations of runs and executions of steps, with leases.

``claim`` is one call of ``perdure.claim_jobs`` (``FOR UPDATE SKIP LOCKED``, so
claimers never wait on each other); a job is deleted only after its work
committed; a job whose lease ran out is claimable again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ...world import Event, Job, JobKind, NewJob
from . import _convert
from ._arrays import number_array, text_array
from ._base import PostgresBase
from ._db import Retry
from ._eventlog import job_arrays, wakes_jobs


class JobQueue(PostgresBase):
    def enqueue(self, jobs: Sequence[NewJob]) -> list[int]:
        """Insert jobs outside any append (timers, sweeps)."""
        if not jobs:
            return []
        row = self._db.one("enqueue_jobs", job_arrays(jobs), retry=Retry.IF_NOT_RUN)
        assert row is not None
        if wakes_jobs(jobs, time.time()):
            self.notifier.publish("jobs")
        return list(row[0])

    def claim(
        self,
        worker_id: str,
        *,
        limit: int,
        lease_seconds: float,
        kinds: Sequence[JobKind] = ("workflow", "step"),
    ) -> list[Job]:
        if limit <= 0 or not kinds:
            return []
        # A claim whose answer was lost leaves its jobs leased until the lease runs
        # out, then they are claimed again: retrying is safe.
        params = (worker_id, limit, float(lease_seconds), text_array(kinds))
        return [_convert.job(row) for row in self._db.all("claim_jobs", params)]

    def claim_with_logs(
        self, worker_id: str, *, limit: int, lease_seconds: float, log_limit: int,
    ) -> tuple[list[Job], dict[str, list[Event]]]:
        if limit <= 0:
            return [], {}
        params = {"worker": worker_id, "limit": limit, "lease": float(lease_seconds),
                  "log_limit": max(0, log_limit)}
        jobs: list[Job] = []
        logs: dict[str, list[Event]] = {}
        for row in self._db.all("claim_with_logs", params):
            if row[0] is not None:
                jobs.append(_convert.job(row[:8]))
            else:
                event = _convert.event((row[2], row[8], row[9], row[3], row[10], row[11]))
                logs.setdefault(event.run_id, []).append(event)
        jobs.sort(key=lambda j: (j.due_at, j.id))
        for log in logs.values():
            log.sort(key=lambda e: e.seq)
        return jobs, logs

    def extend_leases(
        self, worker_id: str, job_ids: Sequence[int], lease_seconds: float
    ) -> list[int]:
        if not job_ids:
            return []
        params = (float(lease_seconds), number_array(job_ids), worker_id)
        rows = self._db.all("extend_leases", params)
        return sorted(row[0] for row in rows)

    def ack(self, worker_id: str, job_ids: Sequence[int]) -> None:
        """Only the holder acknowledges: a job another worker reclaimed after this
        one's lease ran out stays, and is run (and acknowledged) by that worker."""
        if job_ids:
            self._db.run("ack_jobs", (number_array(job_ids), worker_id))

    def release(self, worker_id: str, job_ids: Sequence[int]) -> None:
        if job_ids:
            self._db.run("release_jobs", (worker_id, number_array(job_ids)))
            self.notifier.publish("jobs")

    def tidy_queue(self) -> None:
        self._db.run("tidy_queue", (), prepare=False)  # a utility statement: never prepared

    def list_jobs(self, *, run_id: str | None = None) -> list[Job]:
        return [
            _convert.job(row)
            for row in self._db.all("list_jobs", {"run_id": run_id}, prepare=False)
        ]

    def find_stranded_runs(
        self, *, after_id: str | None, limit: int, now: float | None = None
    ) -> list[str]:
        params = {"after_id": after_id or "", "limit": limit, "now": now}
        return [row[0] for row in self._db.all("find_stranded_runs", params)]
