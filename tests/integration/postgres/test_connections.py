"""Pooled connections that die (server restart, pg_terminate_backend) heal unseen."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from perdure.backends.postgres import PostgresWorld, _db
from perdure.backends.postgres._db import Retry
from perdure.testing import wait_for
from perdure.world import NewEvent, NewJob, uuid7

from ._support import backends

pytestmark = pytest.mark.postgres


def _kill_pool(admin: psycopg.Connection[Any]) -> int:
    pids = backends(admin, "perdure")
    for pid in pids:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return len(pids)


def _warm(world: PostgresWorld, n: int) -> None:
    """Open ``n`` pooled connections by holding them at once."""
    conns = [world._db.getconn() for _ in range(n)]
    for conn in conns:
        world._db.pool.putconn(conn)


def test_reads_and_writes_survive_killed_connections(
    pg_url: str, admin: psycopg.Connection[Any]
) -> None:
    with PostgresWorld(pg_url, listen=False, max_connections=4) as world:
        world.migrate()
        run_id = uuid7()
        world.create_run("wf", "[]", run_id=run_id)
        for round_ in range(3):
            _warm(world, 4)
            assert _kill_pool(admin) >= 1
            assert world.get_run(run_id) is not None  # a read
            _kill_pool(admin)
            result = world.append(run_id, [NewEvent("step_created", f"s{round_}",
                                                    {"name": "x"})])  # a write
            assert result.last_seq == round_ + 2
        assert [e.seq for e in world.list_events(run_id)] == [1, 2, 3, 4]


def test_killed_connections_under_concurrent_use(
    pg_url: str, admin: psycopg.Connection[Any]
) -> None:
    with PostgresWorld(pg_url, listen=False, max_connections=4) as world:
        world.migrate()
        run_ids = [uuid7() for _ in range(8)]
        for run_id in run_ids:
            world.create_run("wf", "[]", run_id=run_id)
        _warm(world, 4)
        _kill_pool(admin)
        errors: list[BaseException] = []

        def go(run_id: str) -> None:
            try:
                for i in range(5):
                    world.append(run_id, [NewEvent("wait_created", f"w{i}", {"resume_at": 1.0})],
                                 jobs=[NewJob("workflow", run_id)])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=go, args=(r,)) for r in run_ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        for run_id in run_ids:
            assert [e.seq for e in world.list_events(run_id)] == list(range(1, 7))


def _backend(world: PostgresWorld) -> int:
    return world._db.call(lambda conn: conn.info.backend_pid, retry=Retry.ALWAYS)


def test_one_caller_after_another_gets_the_same_backend(
    pg_url: str, admin: psycopg.Connection[Any]
) -> None:
    # The pool alone lends its idle connections in turn: each call of a
    # sequential chain went to the next backend, whose caches were cold.
    with PostgresWorld(pg_url, listen=False, max_connections=4) as world:
        _warm(world, 4)
        assert len(backends(admin, "perdure")) == 4
        used = {_backend(world) for _ in range(20)}
        assert len(used) == 1
        assert world._db.lent() == 0


def test_a_connection_given_back_in_a_transaction_is_not_lent_again_as_is(
    pg_url: str,
) -> None:
    with PostgresWorld(pg_url, listen=False, max_connections=2) as world:
        conn = world._db.getconn()
        conn.execute("BEGIN")
        conn.execute("SELECT 1")
        world._db.putconn(conn)  # the pool rolls it back before lending it again
        again = world._db.getconn()
        assert again.info.transaction_status == TransactionStatus.IDLE
        world._db.putconn(again)
        wait_for(lambda: world._db.lent() == 0, what="both borrows given back")


def test_closing_ends_the_sessions_kept_hot(
    pg_url: str, admin: psycopg.Connection[Any]
) -> None:
    world = PostgresWorld(pg_url, listen=False, max_connections=4)
    _warm(world, 2)
    _backend(world)
    world.close()
    wait_for(lambda: backends(admin, "perdure") == [], what="every session ended")


def test_a_connection_kept_hot_goes_back_through_the_pool_in_time(
    pg_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The pool retires connections at their max_lifetime when they come back to
    # it; one kept hot for ever would never come back.
    monkeypatch.setattr(_db, "HOT_SECONDS", 0.0)  # the time is up at once
    with PostgresWorld(pg_url, listen=False, max_connections=2) as world:
        _backend(world)
        assert world._db._hot == []
        wait_for(lambda: world._db.lent() == 0, what="the connection back in the pool")


def test_a_connection_given_back_after_close_is_closed(pg_url: str) -> None:
    # A worker thread may finish its call after the world was closed: what it
    # gives back must not stay open, kept hot for nobody.
    world = PostgresWorld(pg_url, listen=False, max_connections=2)
    conn = world._db.getconn()
    world.close()
    world._db.putconn(conn)
    assert world._db._hot == []
    wait_for(lambda: conn.closed, what="the late connection closed by the pool")


def test_a_write_outlasts_every_pooled_connection_ending_at_once(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart every pooled connection fails in turn (57P) until the pool has
    none of them left: a write that is safe to retry goes on through all of them;
    any other lost connection is retried once."""
    with PostgresWorld(pg_url, listen=False, max_connections=4) as world:
        world.migrate()
        db = world._db
        real_once = db._once
        failures = {"left": 0}

        def failing(fn: Any) -> Any:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise failures["error"]
            return real_once(fn)

        monkeypatch.setattr(db, "_once", failing)
        run_id = uuid7()
        failures.update(left=4, error=psycopg.errors.AdminShutdown("terminating connection"))
        world.create_run("wf", "[]", run_id=run_id)
        assert world.get_run(run_id) is not None
        failures.update(left=2, error=psycopg.OperationalError("connection lost"))
        with pytest.raises(psycopg.OperationalError, match="connection lost"):
            world.append(run_id, [NewEvent("step_created", "s", {"name": "x"})])
        assert [e.seq for e in world.list_events(run_id)] == [1]
