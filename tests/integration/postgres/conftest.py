"""Postgres-only integration tests: a real server (``pg_url``), never mocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from perdure.backends.postgres import PostgresWorld


@pytest.fixture
def pg_world(pg_url: str) -> Iterator[PostgresWorld]:
    world = PostgresWorld(pg_url)
    world.migrate()
    yield world
    world.close()


@pytest.fixture
def admin(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain autocommit connection to the test database, for checks and sabotage."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def queries(pg_world: PostgresWorld, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the single-row queries ``pg_world`` runs, in order, from the
    test's start (clear it first to see one write's): which SQL function a write
    picked."""
    called: list[str] = []
    one = pg_world._db.one
    monkeypatch.setattr(pg_world._db, "one",
                        lambda name, *a, **k: (called.append(name), one(name, *a, **k))[1])
    return called
