"""The SQL API in the caller's transaction: perdure.start_workflow (also from a
trigger on an application table), perdure.resume_hook, perdure.run_status."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from perdure import Engine, RunFailedError

from ._support import DEADLINE, counts, wait_for

pytestmark = pytest.mark.postgres


def _start(conn: psycopg.Connection[Any], name: str, args: Any, key: str | None = None) -> str:
    row = conn.execute("SELECT perdure.start_workflow(%s, %s, %s)",
                       (name, Jsonb(args), key)).fetchone()
    assert row is not None
    return str(row[0])


def test_rolled_back_start_workflow_leaves_nothing(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    with conn.transaction(force_rollback=True):
        run_id = _start(conn, "tx_echo_wf", ["o-1"])
        assert conn.execute("SELECT perdure.run_status(%s)", (run_id,)).fetchone() == (
            "pending",)
    assert counts(admin) == (0, 0, 0)
    assert admin.execute("SELECT perdure.run_status(%s)", (run_id,)).fetchone() == (None,)


def test_committed_start_workflow_completes_with_the_json_arguments(
    engine: Engine, conn: psycopg.Connection[Any]
) -> None:
    with conn.transaction():
        run_id = conn.execute(
            """SELECT perdure.start_workflow('tx_echo_wf',
                   '["o-1", 2, 1.5, {"deep": [null, true], "s": "é"}, []]'::jsonb)"""
        ).fetchone()[0]  # type: ignore[index]
    run = engine.get_run(run_id)
    assert run.result(timeout=DEADLINE) == ["o-1", 2, 1.5, {"deep": [None, True], "s": "é"}, []]
    assert conn.execute("SELECT perdure.run_status(%s)", (run_id,)).fetchone() == (
        "completed",)
    assert engine.start("tx_echo_wf").result(timeout=DEADLINE) == []  # '[]': no arguments


@pytest.mark.parametrize("bad", ['{"order": "o-1"}', '"o-1"', "3", "true", "null"])
def test_arguments_must_be_a_json_array(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any],
    orders: str, bad: str,
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue,
                       match="args must be a JSON array of positional arguments"), \
            conn.transaction():
        conn.execute("INSERT INTO orders VALUES ('o-1', 'x', 1)")
        conn.execute("SELECT perdure.start_workflow('tx_echo_wf', %s::jsonb)", (bad,))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="got NULL"):
        conn.execute("SELECT perdure.start_workflow('tx_echo_wf', NULL)")
    assert counts(admin) == (0, 0, 0)
    assert admin.execute("SELECT count(*) FROM orders").fetchone() == (0,)


# -- from a trigger on an application table ---------------------------------------------
TRIGGER = """
CREATE FUNCTION orders_start_workflow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM perdure.start_workflow('process_order', jsonb_build_array(NEW.id));
    RETURN NEW;
END $$;
CREATE TRIGGER orders_start AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_start_workflow();
"""


def _process_order_runs(admin: psycopg.Connection[Any]) -> list[str]:
    rows = admin.execute("SELECT id FROM perdure.runs WHERE workflow_name = 'process_order'"
                         " ORDER BY id").fetchall()
    return [r[0] for r in rows]


def test_trigger_starts_a_run_that_sees_the_order(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], orders: str
) -> None:
    admin.execute(TRIGGER)
    with conn.transaction(force_rollback=True):
        conn.execute("INSERT INTO orders VALUES ('o-0', 'lamp', 9)")
    assert counts(admin) == (0, 0, 0)  # the order rolled back, and its run with it

    with conn.transaction():
        conn.execute("INSERT INTO orders VALUES ('o-1', 'book', 2)")
        conn.execute("INSERT INTO orders VALUES ('o-2', 'pen', 5)")
    run_ids = _process_order_runs(admin)
    assert len(run_ids) == 2
    results = sorted((engine.get_run(r).result(timeout=DEADLINE) for r in run_ids),
                     key=lambda o: o["id"])
    # read_order ran on its own connection: the order committed with the run.
    assert results == [{"id": "o-1", "item": "book", "qty": 2},
                       {"id": "o-2", "item": "pen", "qty": 5}]


def test_trigger_with_an_idempotency_key(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], orders: str
) -> None:
    """Keyed by order: the trigger fires on insert and on every update, yet the order
    gets one run, and a Python start with the same key gets that run too."""
    admin.execute("""
        CREATE FUNCTION orders_start_keyed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM perdure.start_workflow('process_order', jsonb_build_array(NEW.id),
                                           'order:' || NEW.id);
            RETURN NEW;
        END $$;
        CREATE TRIGGER orders_start AFTER INSERT OR UPDATE ON orders
            FOR EACH ROW EXECUTE FUNCTION orders_start_keyed();
    """)
    with conn.transaction():
        conn.execute("INSERT INTO orders VALUES ('o-1', 'book', 2)")
        conn.execute("UPDATE orders SET qty = 3 WHERE id = 'o-1'")
    [run_id] = _process_order_runs(admin)
    assert engine.get_run(run_id).result(timeout=DEADLINE) == {"id": "o-1", "item": "book",
                                                               "qty": 3}
    conn.execute("UPDATE orders SET qty = 4 WHERE id = 'o-1'")
    again = engine.start("process_order", "o-1", idempotency_key="order:o-1")
    assert again.id == run_id
    assert _process_order_runs(admin) == [run_id]
    assert counts(admin, run_id)[0] == 1


# -- resume_hook, run_status -----------------------------------------------------------------
def test_resume_hook_from_sql_wakes_the_waiting_run(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    run_id = _start(conn, "tx_hook_wf", ["approve:o-1"])
    wait_for(lambda: admin.execute(
        "SELECT 1 FROM perdure.hooks WHERE token = 'approve:o-1' AND status = 'active'"
    ).fetchone(), what="the hook to be live")
    assert conn.execute("SELECT perdure.resume_hook('nobody', '{}'::jsonb)").fetchone() == (
        False,)
    with conn.transaction(force_rollback=True):  # a rolled-back resume delivers nothing
        assert conn.execute("SELECT perdure.resume_hook('approve:o-1', '1'::jsonb)"
                            ).fetchone() == (True,)
    assert conn.execute("SELECT perdure.run_status(%s)", (run_id,)).fetchone() == ("running",)
    with conn.transaction():
        assert conn.execute("SELECT perdure.resume_hook('approve:o-1', %s)",
                            (Jsonb({"ok": True, "by": "ann"}),)).fetchone() == (True,)
    assert engine.get_run(run_id).result(timeout=DEADLINE) == {"ok": True, "by": "ann"}
    assert conn.execute("SELECT perdure.resume_hook('approve:o-1', '{}'::jsonb)").fetchone() == (
        False,)  # the run is done: no live hook
    assert conn.execute("SELECT perdure.run_status(%s)", (run_id,)).fetchone() == ("completed",)
    assert conn.execute("SELECT perdure.run_status('no-such-run')").fetchone() == (None,)


# -- JSON from SQL that perdure cannot decode ---------------------------------------------
# perdure's tagged values are objects with the key "__t" (see _serialization.py); a SQL
# caller can write one that is malformed. The start must then either raise (nothing
# written) or give a run that fails: never a run stuck pending, retried forever.
MALFORMED = ['{"__t": "dict", "v": 5}', '{"__t": "bytes", "v": 5}', '{"__t": "tuple", "v": 5}',
             '{"__t": "timedelta", "v": "x"}', '{"__t": "datetime", "v": "not a date"}']


def _fails_or_refused(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> str:
    """The statement's one value, or "refused" when it raised (and rolled back)."""
    try:
        with conn.transaction():
            row = conn.execute(sql, params).fetchone()
    except psycopg.Error:
        return "refused"
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_tagged_argument_never_strands_a_run(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], value: str
) -> None:
    run_id = _fails_or_refused(conn, "SELECT perdure.start_workflow('tx_echo_wf',"
                               " jsonb_build_array(%s::jsonb))", (value,))
    if run_id == "refused":
        assert counts(admin) == (0, 0, 0)
        return
    with pytest.raises(RunFailedError, match="SerializationError"):
        engine.get_run(run_id).result(timeout=DEADLINE)


@pytest.mark.parametrize("value", MALFORMED[:2])
def test_malformed_tagged_hook_payload_never_strands_a_run(
    engine: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], value: str
) -> None:
    run_id = _start(conn, "tx_hook_wf", ["t-1"])
    wait_for(lambda: admin.execute(
        "SELECT 1 FROM perdure.hooks WHERE token = 't-1' AND status = 'active'").fetchone(),
        what="the hook to be live")
    outcome = _fails_or_refused(conn, "SELECT perdure.resume_hook('t-1', %s::jsonb)",
                                (value,))
    if outcome == "refused":
        assert conn.execute("SELECT perdure.run_status(%s)", (run_id,)).fetchone() == (
            "running",)
        return
    with pytest.raises(RunFailedError, match="SerializationError"):
        engine.get_run(run_id).result(timeout=DEADLINE)
