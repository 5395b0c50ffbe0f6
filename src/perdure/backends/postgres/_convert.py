"""Rows to records. The queries select columns in the order of each record's
fields (times already epoch seconds), so most records build positionally."""

from __future__ import annotations

from typing import Any

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

Row = tuple[Any, ...]


def run(row: Row) -> RunRecord:
    return RunRecord(*row)


def event(row: Row) -> Event:
    run_id, seq, event_type, correlation_id, data, created_at = row
    return Event(run_id, seq, event_type, correlation_id, loads(data), created_at)


def step(row: Row) -> StepRecord:
    return StepRecord(*row)


def wait(row: Row) -> WaitRecord:
    return WaitRecord(*row)


def hook(row: Row) -> HookRecord:
    return HookRecord(*row)


def job(row: Row) -> Job:
    return Job(*row)


def chunk(row: Row) -> Chunk:
    run_id, stream, idx, kind, data, created_at = row
    return Chunk(run_id, stream, idx, kind, bytes(data), created_at)
