"""Fixtures for the start-in-transaction tests: a real Postgres database per test
(``pg_url``), a launched in-process worker, plain psycopg connections.

The engine polls only every 30 s, so a run that completes within a test's
deadline (a few seconds) was woken by NOTIFY, which Postgres sends at commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from perdure import Engine

from . import workflows
from ._support import POLL_INTERVAL


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    """A launched engine (worker threads in this process) on a fresh database."""
    eng = Engine(pg_url, concurrency=8, lease_seconds=10, poll_interval=POLL_INTERVAL,
                 recovery_interval=3600)
    eng.launch()
    assert eng.world.listener is not None and eng.world.listener.connected.is_set()  # type: ignore[attr-defined]
    yield eng
    eng.shutdown(timeout=5)


@pytest.fixture
def client(pg_url: str) -> Iterator[Engine]:
    """An engine that is not launched: it starts runs and executes nothing."""
    eng = Engine(pg_url, poll_interval=POLL_INTERVAL)
    yield eng
    eng.shutdown(timeout=5)


@pytest.fixture
def admin(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection of its own, for counting rows and setting up."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """The application's connection: autocommit, transactions via conn.transaction()."""
    with psycopg.connect(pg_url, autocommit=True) as c:
        yield c


@pytest.fixture
def orders(pg_url: str, admin: psycopg.Connection[Any]) -> str:
    """The application's table; read_order reads it from its own connection."""
    admin.execute("CREATE TABLE orders (id text PRIMARY KEY, item text NOT NULL,"
                  " qty int NOT NULL)")
    workflows.DATABASE["url"] = pg_url
    return "orders"



@pytest.fixture
def sa_engine(pg_url: str) -> Iterator[sa.Engine]:
    """A SQLAlchemy engine over psycopg 3 on the same database."""
    eng = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield eng
    eng.dispose()
