"""Rows to records: the only place that knows the column layout of each table."""

from __future__ import annotations

import sqlite3
from typing import Any, cast

from ...world import (
    Chunk,
    Event,
    HookRecord,
    Job,
    RunRecord,
    StepRecord,
    WaitRecord,
    loads,
)


def run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        workflow_name=row["workflow_name"],
        status=row["status"],
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        last_seq=row["last_seq"],
        result_seq=row["result_seq"],
        consumed_seq=row["consumed_seq"],
    )


def event(row: sqlite3.Row) -> Event:
    return Event(
        run_id=row["run_id"],
        seq=row["seq"],
        event_type=row["event_type"],
        correlation_id=row["correlation_id"],
        data=cast("dict[str, Any] | None", loads(row["data"])),
        created_at=row["created_at"],
    )


def step(row: sqlite3.Row) -> StepRecord:
    return StepRecord(
        run_id=row["run_id"],
        correlation_id=row["correlation_id"],
        name=row["name"],
        status=row["status"],
        attempt=row["attempt"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        retry_after=row["retry_after"],
    )


def wait(row: sqlite3.Row) -> WaitRecord:
    return WaitRecord(
        run_id=row["run_id"],
        correlation_id=row["correlation_id"],
        status=row["status"],
        resume_at=row["resume_at"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
    )


def hook(row: sqlite3.Row) -> HookRecord:
    return HookRecord(
        run_id=row["run_id"],
        correlation_id=row["correlation_id"],
        token=row["token"],
        status=row["status"],
        is_webhook=bool(row["is_webhook"]),
        created_at=row["created_at"],
        disposed_at=row["disposed_at"],
    )


def job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        run_id=row["run_id"],
        correlation_id=row["correlation_id"],
        due_at=row["due_at"],
        claimed_by=row["claimed_by"],
        lease_expires_at=row["lease_expires_at"],
        attempts=row["attempts"],
    )


def chunk(row: sqlite3.Row) -> Chunk:
    return Chunk(
        run_id=row["run_id"],
        stream=row["stream"],
        index=row["idx"],
        kind=row["kind"],
        data=bytes(row["data"]),
        created_at=row["created_at"],
    )
