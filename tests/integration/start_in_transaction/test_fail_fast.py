"""Fail fast: a start that cannot be written raises to the caller, and the caller's
transaction cannot commit the run (nor a half of it); a normal start afterwards
still completes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from perdure import Engine
from perdure.errors import SerializationError, WorkflowNotFoundError

from . import workflows as w
from ._support import DEADLINE, counts

pytestmark = pytest.mark.postgres


def _orders(admin: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in admin.execute("SELECT id FROM orders ORDER BY id").fetchall()]


# -- (a) an unknown workflow ----------------------------------------------------------
def test_unknown_workflow_from_sql_aborts_the_callers_transaction(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], orders: str
) -> None:
    with pytest.raises(psycopg.Error,
                       match="unknown workflow tx_never_registered") as info, conn.transaction():
        conn.execute("INSERT INTO orders VALUES ('o-1', 'x', 1)")
        conn.execute("SELECT perdure.start_workflow('tx_never_registered', '[1]'::jsonb)")
    assert info.value.sqlstate == "PD005"
    assert counts(admin) == (0, 0, 0) and _orders(admin) == []
    # Swallowing the error does not let the transaction commit anything.
    with conn.transaction():
        conn.execute("INSERT INTO orders VALUES ('o-2', 'x', 1)")
        try:
            with conn.transaction():
                conn.execute("SELECT perdure.start_workflow('tx_never_registered', '[]')")
        except psycopg.Error:
            pass  # the savepoint is gone, the outer transaction goes on
    assert counts(admin) == (0, 0, 0) and _orders(admin) == ["o-2"]
    with conn.transaction():
        run_id = conn.execute("SELECT perdure.start_workflow('tx_double_wf', '[4]')"
                              ).fetchone()[0]  # type: ignore[index]
    assert engine.get_run(run_id).result(timeout=DEADLINE) == 8


def test_unknown_workflow_from_python_raises_before_touching_the_connection(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], orders: str
) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO orders VALUES ('o-1', 'x', 1)")
        with pytest.raises(WorkflowNotFoundError):
            engine.start("tx_never_registered", 1, connection=conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        run = engine.start("tx_double_wf", 5, connection=conn)
    assert run.result(timeout=DEADLINE) == 10
    assert counts(admin)[0] == 1 and _orders(admin) == ["o-1"]


# -- (b) a database error: a lock on the job table, a short lock_timeout ---------------------
@pytest.fixture
def jobs_locked(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """Another session holds ACCESS EXCLUSIVE on perdure.jobs until it rolls back."""
    with psycopg.connect(pg_url) as locker:
        locker.execute("LOCK TABLE perdure.jobs IN ACCESS EXCLUSIVE MODE")
        yield locker
        locker.rollback()


def test_lock_timeout_raises_and_the_transaction_cannot_commit_the_run(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any],
    orders: str, jobs_locked: psycopg.Connection[Any],
) -> None:
    conn.execute("SET lock_timeout = '200ms'")
    # 1. The error propagates out of the transaction block: all of it rolls back.
    with pytest.raises(psycopg.errors.LockNotAvailable), conn.transaction():
        conn.execute("INSERT INTO orders VALUES ('o-1', 'x', 1)")
        engine.start(w.tx_double_wf, 1, connection=conn)
    # 2. The caller swallows the error and commits: the transaction is aborted,
    #    so the COMMIT cannot write the run (nor the order).
    swallowed: list[Exception] = []
    try:
        with conn.transaction():
            conn.execute("INSERT INTO orders VALUES ('o-2', 'x', 1)")
            try:
                engine.start(w.tx_double_wf, 2, connection=conn)
            except psycopg.errors.LockNotAvailable as exc:
                swallowed.append(exc)
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    except psycopg.Error:
        pass  # a COMMIT of an aborted transaction may raise; it never commits
    assert len(swallowed) == 1
    # 3. Without a transaction block (autocommit off): commit() after the error.
    conn.autocommit = False
    conn.execute("INSERT INTO orders VALUES ('o-3', 'x', 1)")
    with pytest.raises(psycopg.errors.LockNotAvailable):
        engine.start(w.tx_double_wf, 3, connection=conn)
    try:
        conn.commit()
    except psycopg.Error:
        conn.rollback()
    conn.autocommit = True

    jobs_locked.rollback()  # the lock goes; counting jobs would wait on it
    assert counts(admin) == (0, 0, 0)
    assert _orders(admin) == []
    # A normal start afterwards completes (the lock_timeout is still set).
    with conn.transaction():
        conn.execute("INSERT INTO orders VALUES ('o-4', 'x', 1)")
        run = engine.start(w.tx_double_wf, 4, connection=conn)
    assert run.result(timeout=DEADLINE) == 8
    assert _orders(admin) == ["o-4"] and counts(admin)[0] == 1


def test_lock_timeout_from_sql(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any],
    jobs_locked: psycopg.Connection[Any],
) -> None:
    conn.execute("SET lock_timeout = '200ms'")
    with pytest.raises(psycopg.errors.LockNotAvailable), conn.transaction():
        conn.execute("SELECT perdure.start_workflow('tx_double_wf', '[1]')")
    jobs_locked.rollback()
    assert counts(admin) == (0, 0, 0)
    with conn.transaction():
        run_id = conn.execute("SELECT perdure.start_workflow('tx_double_wf', '[6]')"
                              ).fetchone()[0]  # type: ignore[index]
    assert engine.get_run(run_id).result(timeout=DEADLINE) == 12


def test_lock_timeout_async(
    engine: Engine, pg_url: str, admin: psycopg.Connection[Any],
    jobs_locked: psycopg.Connection[Any],
) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as aconn:
            await aconn.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                async with aconn.transaction():
                    await engine.start_async(w.tx_double_wf, 1, connection=aconn)

    asyncio.run(main())
    jobs_locked.rollback()
    assert counts(admin) == (0, 0, 0)


# -- (c) serialization -------------------------------------------------------------------
def test_unserializable_arguments_raise_before_touching_the_connection(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], orders: str
) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO orders VALUES ('o-1', 'x', 1)")
        with pytest.raises(SerializationError):
            engine.start(w.tx_echo_wf, object(), connection=conn)
        with pytest.raises(SerializationError):
            engine.start(w.tx_echo_wf, {"f": lambda: 1}, connection=conn)
        # The caller's transaction is intact: no statement was sent, none failed.
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert counts(conn) == (0, 0, 0)
        run = engine.start(w.tx_echo_wf, "fine", connection=conn)
    assert run.result(timeout=DEADLINE) == ["fine"]
    assert _orders(admin) == ["o-1"] and counts(admin)[0] == 1
