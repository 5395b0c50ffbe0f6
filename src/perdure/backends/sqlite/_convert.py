"""Rows to records. The tables' columns are named as the records' fields, so a
record is built by field name; only the columns stored differently say so."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any, TypeVar, cast

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

R = TypeVar("R")


_NAMES: dict[Any, tuple[str, ...]] = {}


def _field_names(cls: Any) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _by_name(cls: type[R], row: sqlite3.Row, **stored: Any) -> R:
    """``cls`` from the row's columns of the same names; ``stored``: the fields
    whose column is stored differently, converted by the caller."""
    return cls(**{name: stored[name] if name in stored else row[name]
                  for name in _field_names(cls)})


def run(row: sqlite3.Row) -> RunRecord:
    return _by_name(RunRecord, row)


def event(row: sqlite3.Row) -> Event:
    return _by_name(Event, row, data=cast("dict[str, Any] | None", loads(row["data"])))


def step(row: sqlite3.Row) -> StepRecord:
    return _by_name(StepRecord, row)


def wait(row: sqlite3.Row) -> WaitRecord:
    return _by_name(WaitRecord, row)


def hook(row: sqlite3.Row) -> HookRecord:
    return _by_name(HookRecord, row, is_webhook=bool(row["is_webhook"]))


def job(row: sqlite3.Row) -> Job:
    return _by_name(Job, row)


def chunk(row: sqlite3.Row) -> Chunk:
    return _by_name(Chunk, row, index=row["idx"], data=bytes(row["data"]))
