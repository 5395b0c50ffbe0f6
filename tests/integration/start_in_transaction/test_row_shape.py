"""A start from Python (the engine's own connection, or the caller's) and a start
from SQL write the same rows: the run row, its run_created event (seq 1) and one
unclaimed workflow job due now. Only ids, times and the key differ."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest

from perdure import Engine

from . import workflows as w

pytestmark = pytest.mark.postgres

ARGS = ["o-1", 2, 1.5, {"deep": [None, True], "s": "é"}, [], None]


def _rows(admin: psycopg.Connection[Any], run_id: str) -> dict[str, Any]:
    cur = admin.execute("SELECT * FROM perdure.runs WHERE id = %s", (run_id,))
    names = [d.name for d in cur.description or ()]
    [run_row] = cur.fetchall()
    run = dict(zip(names, run_row, strict=True))
    events = admin.execute(
        "SELECT seq, event_type, correlation_id, data, created_at FROM perdure.events"
        " WHERE run_id = %s ORDER BY seq", (run_id,)).fetchall()
    jobs = admin.execute(
        "SELECT kind, correlation_id, claimed_by, lease_expires_at, attempts, due_at, created_at"
        " FROM perdure.jobs WHERE run_id = %s", (run_id,)).fetchall()
    return {"run": run, "events": events, "jobs": jobs}


def test_python_and_sql_starts_write_the_same_rows(
    client: Engine, conn: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    """``client`` is not launched: nothing consumes the jobs."""
    before = time.time()
    pooled = client.start(w.tx_echo_wf, *ARGS, idempotency_key="k-pool").id
    with conn.transaction():
        joined = client.start(w.tx_echo_wf, *ARGS, idempotency_key="k-conn",
                              connection=conn).id
        by_sql = conn.execute("SELECT perdure.start_workflow('tx_echo_wf', %s::jsonb, 'k-sql')",
                              (json.dumps(ARGS),)).fetchone()[0]  # type: ignore[index]
    after = time.time()

    shapes = []
    for run_id, key in ((pooled, "k-pool"), (joined, "k-conn"), (by_sql, "k-sql")):
        assert len(run_id) == 36 and run_id[14] == "7"  # a UUIDv7, from either side
        rows = _rows(admin, run_id)
        run = rows["run"]
        assert run["id"] == run_id and run["idempotency_key"] == key
        assert before - 1 <= run["created_at"] <= run["updated_at"] <= after + 1
        [(seq, kind, cid, data, created_at)] = rows["events"]
        assert created_at == run["created_at"]
        event = json.loads(data)
        assert event == {"workflow": "tx_echo_wf", "input": ARGS, "idempotency_key": key}
        [(job_kind, job_cid, claimed_by, lease, attempts, due_at, job_created)] = rows["jobs"]
        assert before - 1 <= due_at <= after + 1 and job_created == due_at
        shapes.append((
            {k: v for k, v in run.items()
             if k not in ("id", "idempotency_key", "created_at", "updated_at")},
            (seq, kind, cid, list(event)),
            (job_kind, job_cid, claimed_by, lease, attempts),
        ))
    assert shapes[0] == shapes[1] == shapes[2]
    assert shapes[0] == (
        {"workflow_name": "tx_echo_wf", "status": "pending", "started_at": None,
         "completed_at": None, "last_seq": 1, "result_seq": 0, "consumed_seq": 0},
        (1, "run_created", None, ["workflow", "input", "idempotency_key"]),
        ("workflow", None, None, None, 0),
    )
    # And the World reads them back alike.
    records = [client.world.get_run(r) for r in (pooled, joined, by_sql)]
    assert len({(r.workflow_name, r.status, r.last_seq) for r in records if r}) == 1
