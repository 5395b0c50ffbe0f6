"""The job queue: continuations of runs and executions of steps, with leases.

A job is deleted (acknowledged) only after its work committed; a job whose lease
ran out is claimable again. ``BEGIN IMMEDIATE`` serializes claimers, which is what
``FOR UPDATE SKIP LOCKED`` buys on Postgres.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from ...world import Event, Job, JobKind, NewJob
from . import _convert
from ._connection import Q, SqliteBase
from ._reads import read_events


def insert_jobs(
    conn: sqlite3.Connection, jobs: Sequence[NewJob], now: float
) -> tuple[list[int], bool]:
    """Insert ``jobs`` in the caller's transaction, in their order. Returns their ids
    and whether one of them is unclaimed and due now (so ``jobs`` should be woken).

    A run of step jobs with the same run, due time and claim (a fan-out's) is one
    statement: one ``execute`` per job cost a 50-step fan-out's creation about 1 ms
    of its 4 (slow phase)."""
    ids: list[int] = []
    wake = False
    i = 0
    while i < len(jobs):
        end = _same_terms_end(jobs, i)
        if end - i > 1:
            rows = _upsert_step_jobs(conn, jobs[i:end], now)
        else:
            rows = [_insert_job(conn, jobs[i], now)]
        for new, (job_id, due_at) in zip(jobs[i:end], rows, strict=True):
            ids.append(job_id)
            wake = wake or (new.claimed_by is None and due_at <= now)
        i = end
    return ids, wake


def _same_terms_end(jobs: Sequence[NewJob], i: int) -> int:
    """The end of the run of step jobs from ``i`` that one statement can insert."""
    terms = _shared_terms(jobs[i])
    end = i + 1
    while terms is not None and end < len(jobs) and _shared_terms(jobs[end]) == terms:
        end += 1
    return end


def _shared_terms(job: NewJob) -> tuple[Any, ...] | None:
    """What the step jobs of one statement share; None for a job that goes alone."""
    if job.kind != "step" or job.correlation_id is None:
        return None
    return (job.run_id, job.due_at, job.claimed_by, job.lease_seconds)


def _job_params(new: NewJob, now: float) -> dict[str, Any]:
    return {
        "run_id": new.run_id,
        "cid": new.correlation_id,
        "due_at": now if new.due_at is None else new.due_at,
        "claimed_by": new.claimed_by,
        "lease_expires_at": None if new.claimed_by is None else now + new.lease_seconds,
        "now": now,
    }


def _insert_job(conn: sqlite3.Connection, new: NewJob, now: float) -> tuple[int, float]:
    if new.kind == "workflow" and new.claimed_by is None:
        name = "upsert_workflow_job"
    elif new.kind == "workflow":
        name = "insert_claimed_workflow_job"
    elif new.kind == "step":
        if new.correlation_id is None:
            raise ValueError("a step job needs the step's correlation_id")
        name = "upsert_step_job"
    else:
        raise ValueError(f"unknown job kind {new.kind!r}")
    row = conn.execute(Q[name], _job_params(new, now)).fetchone()
    return row["id"], row["due_at"]


def _upsert_step_jobs(conn: sqlite3.Connection, jobs: Sequence[NewJob],
                      now: float) -> list[tuple[int, float]]:
    """``upsert_step_job`` for steps of one run sharing due time and claim."""
    params = _job_params(jobs[0], now)
    params["cids"] = json.dumps([new.correlation_id for new in jobs])
    rows = conn.execute(Q["upsert_step_jobs"], params).fetchall()
    found = {row["correlation_id"]: (row["id"], row["due_at"]) for row in rows}
    return [found[new.correlation_id] for new in jobs]


def delete_jobs(conn: sqlite3.Connection, job_ids: Sequence[int]) -> None:
    if job_ids:
        conn.execute(Q["delete_jobs"], {"ids": json.dumps(list(job_ids))})


class JobQueue(SqliteBase):
    def enqueue(self, jobs: Sequence[NewJob]) -> list[int]:
        """Insert jobs outside any append (timers, sweeps). Wakes ``jobs`` when
        one is claimable now."""
        with self._write() as conn:
            ids, wake = insert_jobs(conn, jobs, time.time())
        if wake:
            self._publish("jobs")
        return ids

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
        now = time.time()
        found = self._row("any_claimable", {"now": now})
        if found is None or not found["found"]:
            return []
        params = {
            "worker": worker_id,
            "now": now,
            "lease": lease_seconds,
            "kinds": json.dumps(list(kinds)),
            "limit": limit,
        }
        with self._write() as conn:
            rows = conn.execute(Q["claim_jobs"], params).fetchall()
        jobs = [_convert.job(row) for row in rows]
        return sorted(jobs, key=lambda j: (j.due_at, j.id))

    def claim_with_logs(
        self, worker_id: str, *, limit: int, lease_seconds: float, log_limit: int,
    ) -> tuple[list[Job], dict[str, list[Event]]]:
        jobs = self.claim(worker_id, limit=limit, lease_seconds=lease_seconds)
        logs: dict[str, list[Event]] = {}
        for run_id in dict.fromkeys(j.run_id for j in jobs if j.kind == "workflow"):
            if log := read_events(self, run_id, limit=max(0, log_limit)):
                logs[run_id] = log
        return jobs, logs

    def tidy_queue(self) -> None:
        """Nothing to do: SQLite removes a deleted row from its indexes at once."""

    def extend_leases(
        self, worker_id: str, job_ids: Sequence[int], lease_seconds: float
    ) -> list[int]:
        if not job_ids:
            return []
        params = {
            "worker": worker_id,
            "ids": json.dumps(list(job_ids)),
            "lease": lease_seconds,
            "now": time.time(),
        }
        with self._write() as conn:
            rows = conn.execute(Q["extend_leases"], params).fetchall()
        return sorted(row["id"] for row in rows)

    def ack(self, worker_id: str, job_ids: Sequence[int]) -> None:
        """Only the holder acknowledges: a job another worker reclaimed after this
        one's lease ran out stays, and is run (and acknowledged) by that worker."""
        if not job_ids:
            return
        with self._write() as conn:
            conn.execute(Q["ack_jobs"], {"worker": worker_id, "ids": json.dumps(list(job_ids))})

    def release(self, worker_id: str, job_ids: Sequence[int]) -> None:
        if not job_ids:
            return
        params = {"worker": worker_id, "ids": json.dumps(list(job_ids)), "now": time.time()}
        with self._write() as conn:
            conn.execute(Q["fold_released_workflow_jobs"], params)
            conn.execute(Q["drop_folded_workflow_jobs"], params)
            conn.execute(Q["release_jobs"], params)
        self._publish("jobs")

    def list_jobs(self, *, run_id: str | None = None) -> list[Job]:
        return [_convert.job(row) for row in self._rows("list_jobs", {"run_id": run_id})]

    def find_stranded_runs(
        self, *, after_id: str | None, limit: int, now: float | None = None
    ) -> list[str]:
        params = {
            "after_id": after_id or "",
            "limit": limit,
            "now": time.time() if now is None else now,
        }
        return [row["id"] for row in self._rows("find_stranded_runs", params)]
