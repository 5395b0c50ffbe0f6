"""Helpers for the start-in-transaction tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from perdure.testing import wait_for as _wait_for

T = TypeVar("T")

POLL_INTERVAL = 30.0   # longer than any deadline below: wake-ups must come from NOTIFY
DEADLINE = 15.0        # how long a run may take to complete once committed


def counts(admin: psycopg.Connection[Any], run_id: str | None = None) -> tuple[int, int, int]:
    """(runs, events, jobs) rows: of one run, or in all."""
    row = admin.execute(
        "SELECT (SELECT count(*) FROM perdure.runs WHERE %(r)s::text IS NULL OR id = %(r)s),"
        " (SELECT count(*) FROM perdure.events WHERE %(r)s::text IS NULL OR run_id = %(r)s),"
        " (SELECT count(*) FROM perdure.jobs WHERE %(r)s::text IS NULL OR run_id = %(r)s)",
        {"r": run_id},
    ).fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]), int(row[2]))


def wait_for(fn: Callable[[], T], *, timeout: float = DEADLINE, what: str = "condition") -> T:
    """Poll ``fn`` until it returns something truthy; fail at the deadline."""
    return _wait_for(fn, timeout=timeout, what=what)
