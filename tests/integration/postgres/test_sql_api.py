"""The SQL API (DESIGN.md 1.2): start_workflow, resume_hook, run_status."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from perdure.backends.postgres import PostgresWorld
from perdure.world import NewEvent, dumps, uuid7

pytestmark = pytest.mark.postgres


@pytest.fixture
def world(pg_world: PostgresWorld) -> PostgresWorld:
    pg_world.register_workflows(["checkout"])
    return pg_world


def _start(conn: psycopg.Connection[Any], args: Any, key: str | None = None) -> str:
    row = conn.execute("SELECT perdure.start_workflow('checkout', %s, %s)",
                       (Jsonb(args), key)).fetchone()
    assert row is not None
    return str(row[0])


def _rows(world: PostgresWorld, run_id: str) -> tuple[Any, ...]:
    """A run's rows without what differs between two runs (id, times)."""
    run = world.get_run(run_id)
    assert run is not None
    events = [(e.seq, e.event_type, e.correlation_id, e.data) for e in world.list_events(run_id)]
    jobs = [(j.kind, j.correlation_id, j.claimed_by, j.attempts)
            for j in world.list_jobs(run_id=run_id)]
    return (run.workflow_name, run.status, run.idempotency_key, run.last_seq, run.result_seq,
            run.consumed_seq, run.started_at, run.completed_at, events, jobs)


def _counts(admin: psycopg.Connection[Any]) -> tuple[int, ...]:
    row = admin.execute("SELECT (SELECT count(*) FROM perdure.runs),"
                        " (SELECT count(*) FROM perdure.events),"
                        " (SELECT count(*) FROM perdure.jobs)").fetchone()
    assert row is not None
    return tuple(row)


def test_start_workflow_makes_the_rows_create_run_makes(
    world: PostgresWorld, admin: psycopg.Connection[Any]
) -> None:
    run_id = _start(admin, ["o-1", 2, {"deep": [None, True]}], "key-1")
    assert len(run_id) == 36 and run_id[14] == "7"  # a UUIDv7
    same, _ = world.create_run("checkout", dumps(["o-1", 2, {"deep": [None, True]}]),
                               run_id=uuid7(), idempotency_key="key-2")
    sql_rows, py_rows = _rows(world, run_id), _rows(world, same.id)
    assert sql_rows[2] == "key-1" and py_rows[2] == "key-2"
    assert sql_rows[:2] + sql_rows[3:-2] == py_rows[:2] + py_rows[3:-2]
    [(seq, kind, cid, data)] = sql_rows[-2]
    assert (seq, kind, cid) == (1, "run_created", None)
    assert data == {"workflow": "checkout", "input": ["o-1", 2, {"deep": [None, True]}],
                    "idempotency_key": "key-1"}
    assert py_rows[-2][0][3] == {**data, "idempotency_key": "key-2"}
    assert sql_rows[-1] == py_rows[-1] == [("workflow", None, None, 0)]
    assert admin.execute("SELECT perdure.run_status(%s)", (run_id,)).fetchone() == ("pending",)


def test_args_must_be_an_array(world: PostgresWorld, admin: psycopg.Connection[Any]) -> None:
    for bad in ({"a": 1}, "o-1", 3, None):
        with pytest.raises(psycopg.Error, match="must be a JSON array"):
            _start(admin, bad)
    with pytest.raises(psycopg.Error, match="must be a JSON array"):
        admin.execute("SELECT perdure.start_workflow('checkout', NULL)")
    assert _counts(admin) == (0, 0, 0)


def test_unknown_workflow(world: PostgresWorld, admin: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.Error, match="unknown workflow 'nope'|unknown workflow nope"):
        admin.execute("SELECT perdure.start_workflow('nope', '[]'::jsonb)")
    assert _counts(admin) == (0, 0, 0)


def test_idempotency_key_returns_the_same_run(
    world: PostgresWorld, admin: psycopg.Connection[Any]
) -> None:
    first = _start(admin, [1], "k")
    assert _start(admin, [2], "k") == first
    assert world.create_run("checkout", "[3]", run_id=uuid7(), idempotency_key="k")[0].id == first
    assert _counts(admin) == (1, 1, 1)


def test_concurrent_starts_with_one_key_make_one_run(
    pg_url: str, world: PostgresWorld, admin: psycopg.Connection[Any]
) -> None:
    conns = [psycopg.connect(pg_url, autocommit=True) for _ in range(8)]
    barrier = threading.Barrier(len(conns))
    ids: list[str] = []

    def go(conn: psycopg.Connection[Any]) -> None:
        barrier.wait()
        ids.append(_start(conn, ["x"], "same-key"))

    threads = [threading.Thread(target=go, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in conns:
        c.close()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert _counts(admin) == (1, 1, 1)


def test_rolled_back_start_leaves_nothing(
    world: PostgresWorld, admin: psycopg.Connection[Any]
) -> None:
    jobs = world.notifier.subscribe("jobs")
    with admin.transaction(force_rollback=True):
        run_id = _start(admin, ["o-1"])
        assert admin.execute("SELECT perdure.run_status(%s)", (run_id,)).fetchone() == (
            "pending",)
    assert _counts(admin) == (0, 0, 0)
    assert world.get_run(run_id) is None
    assert not jobs.wait(0.2)  # NOTIFY is transactional: nothing was sent


def test_start_in_the_callers_transaction(
    world: PostgresWorld, admin: psycopg.Connection[Any]
) -> None:
    """World.create_run_statement: the same function, on the caller's connection."""
    jobs = world.notifier.subscribe("jobs")
    run_id = uuid7()
    sql, params = world.create_run_statement("checkout", dumps([1]), run_id, None)
    with admin.transaction():
        assert admin.execute(sql, params).fetchone() == (run_id,)
        admin.execute("CREATE TEMP TABLE caller_work (x int)")  # the caller's own writes
        assert world.get_run(run_id) is None  # not visible before the caller commits
        assert not jobs.wait(0.05)
    assert world.get_run(run_id) is not None
    assert jobs.wait(10)
    with admin.transaction(force_rollback=True):
        admin.execute(sql, (*params[:2], uuid7(), None))
    assert _counts(admin) == (1, 1, 1)


def test_resume_hook(world: PostgresWorld, admin: psycopg.Connection[Any]) -> None:
    run_id = _start(admin, [])
    world.append(run_id, [NewEvent("run_started"),
                          NewEvent("hook_created", "h1", {"token": "approve:o-1"})])
    world.append(run_id, [], ack=[j.id for j in world.list_jobs(run_id=run_id)])
    jobs = world.notifier.subscribe("jobs")

    row = admin.execute("SELECT perdure.resume_hook('approve:o-1', %s)",
                        (Jsonb({"ok": True, "nul": "a\u00e9"}),)).fetchone()
    assert row == (True,)
    last = world.list_events(run_id)[-1]
    assert (last.event_type, last.correlation_id, last.data) == (
        "hook_received", "h1", {"payload": {"ok": True, "nul": "a\u00e9"}})
    run = world.get_run(run_id)
    assert run is not None and run.result_seq == last.seq
    assert [(j.kind, j.claimed_by) for j in world.list_jobs(run_id=run_id)] == [
        ("workflow", None)]
    assert jobs.wait(10)

    assert admin.execute("SELECT perdure.resume_hook('nobody', '{}'::jsonb)").fetchone() == (
        False,)
    world.append(run_id, [NewEvent("hook_disposed", "h1")])
    assert admin.execute("SELECT perdure.resume_hook('approve:o-1', 'null'::jsonb)"
                         ).fetchone() == (False,)


def test_resume_hook_rolled_back(world: PostgresWorld, admin: psycopg.Connection[Any]) -> None:
    run_id = _start(admin, [])
    world.append(run_id, [NewEvent("hook_created", "h1", {"token": "t"})])
    before = (world.list_events(run_id), world.list_jobs(run_id=run_id))
    with admin.transaction(force_rollback=True):
        assert admin.execute("SELECT perdure.resume_hook('t', '1')").fetchone() == (True,)
    assert (world.list_events(run_id), world.list_jobs(run_id=run_id)) == before


def test_run_status(world: PostgresWorld, admin: psycopg.Connection[Any]) -> None:
    assert admin.execute("SELECT perdure.run_status('no-such-run')").fetchone() == (None,)
    run_id = _start(admin, [])
    world.append(run_id, [NewEvent("run_started"), NewEvent("run_completed", data={})])
    assert admin.execute("SELECT perdure.run_status(%s)", (run_id,)).fetchone() == (
        "completed",)


def test_append_events_with_empty_job_arrays_returns_no_job_ids(
        pg_world: PostgresWorld, admin: psycopg.Connection[Any]) -> None:
    """Empty job arrays from SQL give '{}' whichever way append_events inserts jobs
    (migration 0014 took the jobs of steps the append creates out of _insert_jobs)."""
    run_id = uuid7()
    pg_world.create_run("wf", "[]", run_id=run_id)
    row = admin.execute(
        "SELECT job_ids FROM perdure.append_events(%s, ARRAY['step_created'], ARRAY['s'],"
        " ARRAY['{\"name\": \"x\"}'], NULL, ARRAY['x'], NULL, NULL, NULL, NULL, NULL, NULL,"
        " '{}', '{}', '{}', '{}', '{}', '{}', NULL, false, false)", (run_id,)).fetchone()
    assert row == ([],)
    assert pg_world.list_jobs(run_id=run_id)[0].kind == "workflow"  # only the start's
