"""Helpers for the Postgres integration tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from perdure.testing import wait_for as _wait_for

T = TypeVar("T")


def wait_for(fn: Callable[[], T], *, timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``fn`` until it returns something truthy; fail at the deadline."""
    return _wait_for(fn, timeout=timeout, what=what)


def backends(admin: psycopg.Connection[Any], application_name: str | None = None) -> list[int]:
    """Server pids of the sessions on the test database (other than ``admin``)."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()"
        " AND (%s::text IS NULL OR application_name = %s::text)",
        (application_name, application_name),
    ).fetchall()
    return [row[0] for row in rows]
