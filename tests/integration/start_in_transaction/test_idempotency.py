"""Idempotency keys from both sides: concurrent starts with one key, from Python
(through the engine's pool, and in the caller's transaction) and from SQL, mixed,
create exactly one run, and every caller gets its id."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from perdure import Engine

from . import workflows as w
from ._support import DEADLINE, counts, wait_for

pytestmark = pytest.mark.postgres

CALLERS = 32


def test_32_concurrent_starts_with_one_key_make_one_run(
    engine: Engine, pg_url: str, admin: psycopg.Connection[Any]
) -> None:
    key = "order:o-1"
    barrier = threading.Barrier(CALLERS, timeout=DEADLINE)
    ids: list[str | None] = [None] * CALLERS
    errors: list[BaseException] = []

    def python_pool(i: int) -> str:
        barrier.wait()
        return engine.start(w.tx_double_wf, i, idempotency_key=key).id

    def python_connection(i: int) -> str:
        with psycopg.connect(pg_url, autocommit=True) as c:
            barrier.wait()
            with c.transaction():
                run = engine.start(w.tx_double_wf, i, idempotency_key=key, connection=c)
            return run.id

    def sql(i: int) -> str:
        with psycopg.connect(pg_url, autocommit=True) as c:
            barrier.wait()
            with c.transaction():
                row = c.execute("SELECT perdure.start_workflow('tx_double_wf',"
                                " jsonb_build_array(%s::int), %s)", (i, key)).fetchone()
            assert row is not None
            return str(row[0])

    kinds: list[Callable[[int], str]] = [python_pool, python_connection, sql]

    def call(i: int) -> None:
        try:
            ids[i] = kinds[i % 3](i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE * 2)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert None not in ids and len(set(ids)) == 1
    run_id = ids[0]
    assert run_id is not None
    assert admin.execute("SELECT count(*) FROM perdure.runs").fetchone() == (1,)
    assert admin.execute("SELECT idempotency_key FROM perdure.runs").fetchone() == (key,)
    assert admin.execute("SELECT count(*) FROM perdure.events WHERE event_type = 'run_created'"
                         ).fetchone() == (1,)
    run = engine.get_run(run_id)
    winner = run.events()[0].data["input"][0]
    assert run.result(timeout=DEADLINE) == 2 * winner
    assert counts(admin, run_id)[2] == 0  # its one job was done and acknowledged


def _blocked_on_a_lock(admin: psycopg.Connection[Any], pid: int) -> bool:
    row = admin.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                        (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_start_waiting_on_an_uncommitted_key(
    engine: Engine, pg_url: str, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any],
    outcome: str,
) -> None:
    """The key's first holder commits: the waiter gets its run. It rolls back: the
    waiter creates the run (never an id of a run that does not exist)."""
    got: list[str] = []
    with psycopg.connect(pg_url, autocommit=True) as other:
        pid = other.info.backend_pid

        def waiter() -> None:
            row = other.execute("SELECT perdure.start_workflow('tx_double_wf', '[2]', 'k')"
                                ).fetchone()
            assert row is not None
            got.append(str(row[0]))

        thread = threading.Thread(target=waiter)
        with conn.transaction(force_rollback=outcome == "rollback"):
            first = engine.start(w.tx_double_wf, 1, idempotency_key="k", connection=conn)
            thread.start()
            wait_for(lambda: _blocked_on_a_lock(admin, pid), what="the waiter to block")
        thread.join(DEADLINE)
        assert not thread.is_alive()
    [second] = got
    if outcome == "commit":
        assert second == first.id
        assert engine.get_run(second).result(timeout=DEADLINE) == 2
    else:
        assert second != first.id and counts(admin, first.id) == (0, 0, 0)
        assert engine.get_run(second).result(timeout=DEADLINE) == 4
    assert counts(admin)[0] == 1
