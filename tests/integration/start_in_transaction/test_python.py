"""engine.start(..., connection=...) joins the caller's transaction: psycopg sync
and async connections, savepoints, SQLAlchemy. Rolled back: no run, no event, no
job. Committed: the run completes, woken by the NOTIFY sent at commit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from perdure import Engine

from . import workflows as w
from ._support import DEADLINE, counts, wait_for

pytestmark = pytest.mark.postgres


class Abort(Exception):
    """The application gives up on its transaction."""


def _order(conn: psycopg.Connection[Any], order_id: str) -> None:
    conn.execute("INSERT INTO orders (id, item, qty) VALUES (%s, 'book', 1)", (order_id,))


def _order_exists(admin: psycopg.Connection[Any], order_id: str) -> bool:
    return admin.execute("SELECT 1 FROM orders WHERE id = %s", (order_id,)).fetchone() is not None


# -- psycopg, sync -----------------------------------------------------------------
def test_rolled_back_start_leaves_nothing(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], orders: str
) -> None:
    with pytest.raises(Abort), conn.transaction():
        _order(conn, "o-1")
        run = engine.start(w.tx_double_wf, 21, connection=conn)
        assert counts(conn, run.id) == (1, 1, 1)   # written, in the caller's transaction
        assert counts(admin, run.id) == (0, 0, 0)  # ... and invisible outside it
        raise Abort
    assert counts(admin) == (0, 0, 0)
    assert not _order_exists(admin, "o-1")


def test_committed_start_completes(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], orders: str
) -> None:
    with conn.transaction():
        _order(conn, "o-1")
        run = engine.start(w.tx_double_wf, 21, connection=conn)
    assert _order_exists(admin, "o-1")
    assert run.result(timeout=DEADLINE) == 42
    assert engine.get_run(run.id).status() == "completed"


def test_start_without_an_explicit_transaction_block(
    engine: Engine, pg_url: str, admin: psycopg.Connection[Any]
) -> None:
    """A non-autocommit connection: the start is in the implicit transaction,
    made or undone by conn.commit() / conn.rollback()."""
    with psycopg.connect(pg_url) as c:
        gone = engine.start(w.tx_double_wf, 1, connection=c)
        c.rollback()
        kept = engine.start(w.tx_double_wf, 2, connection=c)
        assert counts(admin, kept.id) == (0, 0, 0)
        c.commit()
    assert counts(admin, gone.id) == (0, 0, 0)
    assert kept.result(timeout=DEADLINE) == 4


def test_savepoint_rolled_back_outer_committed(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], orders: str
) -> None:
    with conn.transaction():
        _order(conn, "o-1")
        with conn.transaction():  # a savepoint
            run = engine.start(w.tx_double_wf, 21, connection=conn)
            assert counts(conn, run.id) == (1, 1, 1)
            raise psycopg.Rollback  # back to the savepoint only
        assert counts(conn, run.id) == (0, 0, 0)
    assert _order_exists(admin, "o-1")  # the outer transaction did commit
    assert counts(admin) == (0, 0, 0)


def test_savepoint_committed_outer_committed(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], orders: str
) -> None:
    with conn.transaction():
        _order(conn, "o-1")
        with conn.transaction():
            run = engine.start(w.tx_double_wf, 21, connection=conn)
        assert counts(admin, run.id) == (0, 0, 0)  # released savepoint: still not committed
    assert run.result(timeout=DEADLINE) == 42


def test_savepoint_committed_outer_rolled_back(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], orders: str
) -> None:
    with pytest.raises(Abort), conn.transaction():
        _order(conn, "o-1")
        with conn.transaction():
            engine.start(w.tx_double_wf, 21, connection=conn)
        raise Abort
    assert counts(admin) == (0, 0, 0)
    assert not _order_exists(admin, "o-1")


def test_workers_are_woken_at_commit_not_before(
    engine: Engine, pg_url: str, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any],
) -> None:
    """While the caller holds its transaction open, the launched worker cannot see
    the run, even after it has claimed and finished other work meanwhile; no NOTIFY
    goes out. At commit the NOTIFY goes out and wakes the worker (which would
    otherwise poll only every 30 s), and the run starts after the commit."""
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute("LISTEN perdure")
        with conn.transaction():
            run = engine.start(w.tx_double_wf, 21, connection=conn)
            # The worker does full claim cycles meanwhile: it runs a committed run.
            canary = engine.start(w.tx_double_wf, 1)
            assert canary.result(timeout=DEADLINE) == 2
            wait_for(lambda: counts(admin, canary.id)[2] == 0, what="the canary's last ack")
            # A marker NOTIFY: whatever was sent before it is delivered before it.
            admin.execute("NOTIFY perdure, 'marker'")
            _drain_until(listener, "marker")
            # From any other connection the run does not exist: nobody can start it.
            assert counts(admin, run.id) == (0, 0, 0)
            assert admin.execute("SELECT perdure.run_status(%s)",
                                 (run.id,)).fetchone() == (None,)
            assert list(listener.notifies(timeout=0)) == []  # nothing sent for it yet
            committing = time.time()
        assert [n.payload for n in listener.notifies(timeout=DEADLINE, stop_after=1)] == [
            "jobs"]
    assert run.result(timeout=DEADLINE) == 42
    events = run.events()
    assert [e.event_type for e in events][:2] == ["run_created", "run_started"]
    assert events[1].created_at.timestamp() >= committing


def _drain_until(listener: psycopg.Connection[Any], payload: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for note in listener.notifies(timeout=deadline - time.monotonic(), stop_after=1):
            if note.payload == payload:
                return
    raise AssertionError(f"no NOTIFY {payload!r} within {DEADLINE}s")


# -- psycopg, async ------------------------------------------------------------------
def test_async_rolled_back_and_committed(
    engine: Engine, pg_url: str, admin: psycopg.Connection[Any], orders: str
) -> None:
    async def main() -> tuple[str, int]:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as aconn:
            with pytest.raises(Abort):
                async with aconn.transaction():
                    await aconn.execute("INSERT INTO orders VALUES ('o-1', 'pen', 1)")
                    gone = await engine.start_async(w.tx_double_wf, 5, connection=aconn)
                    raise Abort
            async with aconn.transaction():
                async with aconn.transaction():  # savepoint rolled back
                    await engine.start_async("tx_double_wf", 6, connection=aconn)
                    raise psycopg.Rollback
                await aconn.execute("INSERT INTO orders VALUES ('o-2', 'pen', 2)")
                run = await engine.start_async("tx_double_wf", 7, connection=aconn)
                assert counts(admin, run.id) == (0, 0, 0)
            return gone.id, await run.result_async(timeout=DEADLINE)

    gone_id, result = asyncio.run(main())
    assert result == 14
    assert counts(admin, gone_id) == (0, 0, 0)
    assert not _order_exists(admin, "o-1") and _order_exists(admin, "o-2")
    assert counts(admin)[0] == 1  # only the committed run


# -- SQLAlchemy ---------------------------------------------------------------------
def test_sqlalchemy_connection_rolled_back(
    engine: Engine, sa_engine: Any, admin: psycopg.Connection[Any], orders: str
) -> None:
    with pytest.raises(Abort), sa_engine.begin() as sa_conn:
        sa_conn.execute(sa.text("INSERT INTO orders VALUES ('o-1', 'cup', 1)"))
        run = engine.start(w.tx_double_wf, 3, connection=sa_conn)
        assert sa_conn.execute(sa.text("SELECT perdure.run_status(:r)"),
                               {"r": run.id}).scalar() == "pending"
        raise Abort
    assert counts(admin) == (0, 0, 0)
    assert not _order_exists(admin, "o-1")


def test_sqlalchemy_connection_committed(
    engine: Engine, sa_engine: Any, admin: psycopg.Connection[Any], orders: str
) -> None:
    with sa_engine.begin() as sa_conn:
        sa_conn.execute(sa.text("INSERT INTO orders VALUES ('o-1', 'cup', 1)"))
        with sa_conn.begin_nested() as savepoint:
            engine.start(w.tx_double_wf, 100, connection=sa_conn)
            savepoint.rollback()
        run = engine.start(w.tx_double_wf, 3, connection=sa_conn)
        assert counts(admin, run.id) == (0, 0, 0)
    assert _order_exists(admin, "o-1")
    assert run.result(timeout=DEADLINE) == 6
    assert counts(admin)[0] == 1
