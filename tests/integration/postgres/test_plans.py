"""Plans of the write path: made once per session, and never a sequential scan.

A session plans the queue functions' statements once (generic plans, migration
0006). The jobs table is near empty when a worker starts (autovacuum then records
one page) and hundreds of pages under load: a plan made on the small table must
still use the index once the table has grown, or every ack reads the whole table.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from perdure.backends.postgres import PostgresWorld

pytestmark = pytest.mark.postgres

WRITE_PATH = ("append_events", "_insert_jobs", "_wake_held_back", "_ack", "_stream_append",
              "_close_streams", "_create_run", "create_run", "claim_jobs", "release_jobs",
              "write_chunks", "close_stream")


def _jobs_seq_scans(conn: psycopg.Connection[Any]) -> int:
    """Sequential scans of perdure.jobs in this session's open transaction."""
    row = conn.execute(
        "SELECT seq_scan FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'perdure' AND relname = 'jobs'").fetchone()
    assert row is not None
    return int(row[0])


def test_an_ack_planned_on_an_empty_queue_uses_the_index_when_it_has_grown(
    pg_world: PostgresWorld, pg_url: str, admin: psycopg.Connection[Any],
) -> None:
    insert = ("INSERT INTO perdure.jobs (kind, run_id, due_at, claimed_by, lease_expires_at)"
              " SELECT 'workflow', 'r' || g, 0, 'w', 1e12 FROM generate_series(1, %s) g")
    admin.execute(insert, (3,))  # an idle queue as autovacuum last saw it: one page
    admin.execute("VACUUM ANALYZE perdure.jobs")
    with psycopg.connect(pg_url) as conn:  # one session: its plans persist
        with conn.transaction():
            conn.execute("SELECT perdure._ack(ARRAY[-1]::bigint[], 'w', perdure.clock())")
        admin.execute(insert, (20000,))
        target = admin.execute("SELECT max(id) FROM perdure.jobs").fetchone()
        assert target is not None
        with conn.transaction():
            conn.execute("SELECT perdure._ack(ARRAY[%s]::bigint[], 'w', perdure.clock())",
                         (target[0],))
            assert _jobs_seq_scans(conn) == 0
    left = admin.execute("SELECT count(*) FROM perdure.jobs WHERE id = %s", (target[0],))
    assert left.fetchone() == (0,)


def test_write_path_functions_plan_once_and_never_seq_scan(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any],
) -> None:
    rows = admin.execute(
        "SELECT proname, proconfig FROM pg_proc"
        " WHERE pronamespace = 'perdure'::regnamespace AND proname = ANY (%s)",
        (list(WRITE_PATH),)).fetchall()
    assert {name for name, _ in rows} == set(WRITE_PATH)
    for name, config in rows:
        assert set(config or []) >= {"plan_cache_mode=force_generic_plan",
                                     "enable_seqscan=off"}, name
