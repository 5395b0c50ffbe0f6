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
