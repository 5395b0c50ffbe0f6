"""Batched writes on Postgres: one transaction, one commit, with or without
prepared statements (behind a transaction-mode pooler they cannot be kept)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from perdure.backends.postgres import PostgresWorld
from perdure.errors import EntityConflictError
from perdure.world import AppendRequest, CreateRequest, NewEvent, uuid7

pytestmark = pytest.mark.postgres


def _writers(admin: psycopg.Connection[Any], table: str, ids: list[str]) -> int:
    """How many transactions wrote these runs' rows of ``table`` (distinct xmin)."""
    column = "id" if table == "runs" else "run_id"
    row = admin.execute(f"SELECT count(DISTINCT xmin::text) FROM perdure.{table}"
                        f" WHERE {column} = ANY (%s)", (ids,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("prepare", [True, False], ids=["prepared", "unprepared"])
def test_a_batch_is_one_transaction(pg_url: str, admin: psycopg.Connection[Any],
                                    prepare: bool) -> None:
    with PostgresWorld(pg_url, listen=False, prepare=prepare) as world:
        world.migrate()
        ids = [uuid7() for _ in range(5)]
        made = world.create_runs([CreateRequest("wf", "[]", run_id) for run_id in ids])
        assert [r.id for r, _ in made] == ids
        assert _writers(admin, "events", ids) == 1
        started = [AppendRequest(run_id, [NewEvent("step_created", "s1", {"name": "x"})])
                   for run_id in ids]
        results = world.append_many(started)
        assert [r.last_seq for r in results] == [2] * 5
        assert _writers(admin, "steps", ids) == 1

        refused = [AppendRequest(ids[0], [NewEvent("step_created", "s2", {"name": "x"})]),
                   AppendRequest(ids[1], [NewEvent("step_created", "s1", {"name": "x"})])]
        with pytest.raises(EntityConflictError):  # s1 of ids[1] exists
            world.append_many(refused)
        assert [s.correlation_id for s in world.list_steps(ids[0]).items] == ["s1"]
        assert world.append_many(refused[:1])[0].last_seq == 3  # the connection is fine


def _claim_pages(admin: psycopg.Connection[Any]) -> int:
    """Buffers an empty claim reads (shared hits and reads), from EXPLAIN."""
    plan = admin.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM "
                         "perdure.claim_jobs('nobody', 16, 30, '{workflow,step}')").fetchone()
    assert plan is not None
    top = plan[0][0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


def test_tidy_queue_keeps_claims_from_walking_past_deleted_jobs(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any]
) -> None:
    """A deleted job stays in the queue's indexes until a vacuum, and a claim scans
    past it; ``tidy_queue`` removes them (autovacuum is off on the CI server)."""
    admin.execute("ALTER TABLE perdure.jobs SET (autovacuum_enabled = false)")
    for _ in range(20):
        ids = [uuid7() for _ in range(200)]
        pg_world.create_runs([CreateRequest("wf", "[]", run_id) for run_id in ids])
        jobs = pg_world.claim("w", limit=200, lease_seconds=30)
        pg_world.ack("w", [j.id for j in jobs])
    bloated = _claim_pages(admin)
    pg_world.tidy_queue()
    tidied = _claim_pages(admin)
    assert bloated > 40 and tidied < bloated / 4, (bloated, tidied)
