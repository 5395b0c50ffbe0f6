"""Fixtures shared by every test layer.

``backend_url``: a fresh, empty database URL, once per backend (sqlite, postgres).
``world``: an open, migrated World on that database.
``pg_server`` / ``pg_url``: Postgres only.
``record_calls``: record the calls of an object's method (a World's, say) until the
test ends.

Postgres comes from ``perdure.testing.find_or_start_postgres``; when none can be
had, Postgres tests skip, unless ``PERDURE_REQUIRE_POSTGRES=1`` (CI), where that
is a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from perdure import Engine
from perdure.backends import open_world
from perdure.testing import PostgresServer, assert_replays_cleanly, find_or_start_postgres
from perdure.testing._postgres import create_database, drop_database

REQUIRE_POSTGRES = os.environ.get("PERDURE_REQUIRE_POSTGRES") == "1"
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        server = find_or_start_postgres()
    except Exception as exc:  # noqa: BLE001 - reported as skip or failure below
        if REQUIRE_POSTGRES:
            pytest.fail(f"PERDURE_REQUIRE_POSTGRES=1 but no PostgreSQL: {exc}")
        pytest.skip(f"no PostgreSQL available: {exc}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh database for this test (created, then dropped)."""
    name = f"perdure_t{os.getpid()}_{next(_db_counter)}"
    url = create_database(pg_server.url, name)
    yield url
    drop_database(pg_server.url, name)


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/perdure.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def world(backend_url: str) -> Iterator[object]:
    w = open_world(backend_url)
    yield w
    w.close()


@pytest.fixture
def launched() -> Iterator[Callable[..., Engine]]:
    """``launched(url, concurrency=..., **options)``: an engine running its worker,
    shut down after the test, and every run it completed must replay cleanly from
    its log."""
    made: list[Engine] = []

    def launch(url: str, *, concurrency: int, **options: Any) -> Engine:
        engine = Engine(url, lease_seconds=5, concurrency=concurrency, **options)
        made.append(engine)
        return engine.launch()

    yield launch
    for engine in made:
        try:
            for run in engine.list_runs(status="completed", limit=1000):
                assert_replays_cleanly(engine.world, run.id)
        finally:
            engine.shutdown(timeout=5)


Call = tuple[str, tuple[Any, ...], dict[str, Any]]  # method name, args, kwargs
RecordCalls = Callable[..., list[Call]]


@pytest.fixture
def record_calls(monkeypatch: pytest.MonkeyPatch) -> RecordCalls:
    """``record_calls(obj, name, into=None)``: from now to the end of the test, each
    call of ``obj.name`` runs as before and is appended (name, args, kwargs) to
    ``into`` (a new list if None), which is returned. Several methods may share one
    list, which then shows their order."""

    def record(obj: object, name: str, into: list[Call] | None = None) -> list[Call]:
        calls: list[Call] = [] if into is None else into
        method = getattr(obj, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, args, kwargs))  # one list.append: safe across threads
            return method(*args, **kwargs)

        monkeypatch.setattr(obj, name, recorded)
        return calls

    return record
