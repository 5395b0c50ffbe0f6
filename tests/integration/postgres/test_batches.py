"""Batched writes on Postgres: one transaction, one commit, with or without
prepared statements (behind a transaction-mode pooler they cannot be kept)."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from perdure.backends.postgres import PostgresWorld
from perdure.errors import EntityConflictError
from perdure.world import AppendRequest, CreateRequest, NewEvent, uuid7

from ._support import wait_for

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


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_batch_waiting_on_an_uncommitted_key(
    pg_world: PostgresWorld, pg_url: str, admin: psycopg.Connection[Any], outcome: str
) -> None:
    """A batch's request whose key another transaction holds uncommitted waits for
    it: it commits, the request returns its run (read after the wait, not from the
    batch's first snapshot); it rolls back, the request creates the run."""
    fresh, keyed = uuid7(), uuid7()
    made: list[list[tuple[str, bool]]] = []

    def batch() -> None:
        pairs = pg_world.create_runs([CreateRequest("wf", "[1]", keyed, "k"),
                                      CreateRequest("wf", "[2]", fresh)])
        made.append([(run.id, created) for run, created in pairs])

    with psycopg.connect(pg_url) as holder:  # a transaction, open until the with ends
        first = uuid7()
        holder.execute("SELECT perdure.create_run('wf', '[0]', %s, 'k', NULL)", (first,))
        thread = threading.Thread(target=batch)
        thread.start()
        wait_for(lambda: _blocked_on_a_lock(admin), what="the batch to wait for the key")
        if outcome == "commit":
            holder.commit()
        else:
            holder.rollback()
    thread.join(30)
    assert not thread.is_alive()
    if outcome == "commit":
        assert made == [[(first, False), (fresh, True)]]
        assert pg_world.get_run(keyed) is None
    else:
        assert made == [[(keyed, True), (fresh, True)]]
        assert pg_world.get_run(first) is None
    assert [len(pg_world.list_jobs(run_id=r)) for r, _ in made[0]] == [1, 1]


def _blocked_on_a_lock(admin: psycopg.Connection[Any]) -> bool:
    row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'").fetchone()
    return row is not None and row[0] > 0


def test_tidying_the_queue_never_truncates_it(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any]
) -> None:
    """A truncating vacuum takes the queue's exclusive lock (claims and appends
    wait); the emptied tail pages stay, for the next jobs."""
    ids = [uuid7() for _ in range(1000)]
    pg_world.create_runs([CreateRequest("wf", "[]", run_id) for run_id in ids])
    admin.execute("DELETE FROM perdure.jobs")
    size = admin.execute("SELECT pg_relation_size('perdure.jobs')").fetchone()
    assert size is not None and size[0] > 8192
    pg_world.tidy_queue()
    assert admin.execute("SELECT pg_relation_size('perdure.jobs')").fetchone() == size
