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
