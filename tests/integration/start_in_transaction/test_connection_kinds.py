"""connection= takes the connections applications actually hold: a SQLAlchemy
Connection used "commit as you go" (no begin()), a psycopg connection with a
row factory, and refuses the wrong flavour (sync vs async) before writing."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.rows import dict_row

from perdure import Engine

from . import workflows as w
from ._support import DEADLINE, counts

pytestmark = pytest.mark.postgres


def test_sqlalchemy_commit_as_you_go(
    engine: Engine, sa_engine: sa.Engine, admin: psycopg.Connection[Any]
) -> None:
    """SQLAlchemy 2.0 style: connect(), work, commit(). The start must join the
    transaction SQLAlchemy commits (it does when the start autobegins it)."""
    with sa_engine.connect() as c:
        gone = engine.start(w.tx_double_wf, 1, connection=c)
        c.rollback()
        run = engine.start(w.tx_double_wf, 2, connection=c)
        assert c.in_transaction()
        c.commit()
    assert counts(admin, gone.id) == (0, 0, 0)
    assert counts(admin, run.id)[0] == 1, "the run was lost: SQLAlchemy's commit() was a no-op"
    assert run.result(timeout=DEADLINE) == 4


def test_connection_with_a_row_factory(
    engine: Engine, pg_url: str, admin: psycopg.Connection[Any]
) -> None:
    """An application connection made with row_factory=dict_row: the start works
    (and never raises after having written the run)."""
    with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as c:
        with c.transaction():
            run = engine.start(w.tx_double_wf, 3, connection=c)
        assert run.result(timeout=DEADLINE) == 6

    async def main() -> int:
        async with await psycopg.AsyncConnection.connect(
                pg_url, autocommit=True, row_factory=dict_row) as ac:
            async with ac.transaction():
                arun = await engine.start_async(w.tx_double_wf, 4, connection=ac)
            return await arun.result_async(timeout=DEADLINE)

    assert asyncio.run(main()) == 8
    assert counts(admin)[0] == 2


def test_wrong_flavour_of_connection_raises_before_writing(
    engine: Engine, pg_url: str, conn: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
) -> None:
    """start_async with a sync connection (or start with an async one) raises
    TypeError, and writes nothing into the caller's transaction: a caller that
    catches the error and commits must not commit a run it was told failed."""

    async def sync_conn_to_start_async() -> None:
        with conn.transaction():
            with pytest.raises(TypeError):
                await engine.start_async(w.tx_double_wf, 1, connection=conn)
            assert counts(conn) == (0, 0, 0)

    asyncio.run(sync_conn_to_start_async())

    async def async_conn_to_start() -> None:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as ac:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no "coroutine was never awaited"
                with pytest.raises(TypeError):
                    engine.start(w.tx_double_wf, 2, connection=ac)

    asyncio.run(async_conn_to_start())
    assert counts(admin) == (0, 0, 0)
