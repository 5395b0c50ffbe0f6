"""Plans of the write path: made once per session, and never a sequential scan.

A session plans the queue functions' statements once (generic plans, migration
0006). The jobs table is near empty when a worker starts (autovacuum then records
one page) and hundreds of pages under load: a plan made on the small table must
still use the index once the table has grown, or every ack reads the whole table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from perdure.backends.postgres import PostgresWorld
from perdure.backends.postgres._db import Q

pytestmark = pytest.mark.postgres

WRITE_PATH = ("append_events", "append_next_step", "append_last_step", "append_one_step_run",
              "create_run_started", "create_run_first_step", "create_run_ended",
              "append_many", "_insert_jobs", "_wake_held_back", "_ack", "_stream_append",
              "_close_streams", "_create_run", "create_run", "create_runs", "claim_jobs",
              "release_jobs", "write_chunks", "close_stream")


def _table_stat(conn: psycopg.Connection[Any], counter: str, table: str = "jobs") -> int:
    """A counter of ``pg_stat_xact_user_tables`` for a perdure table (the jobs): what
    this session's open transaction did to the table."""
    row = conn.execute(
        sql.SQL("SELECT {} FROM pg_stat_xact_user_tables"
                " WHERE schemaname = 'perdure' AND relname = %s").format(
            sql.Identifier(counter)), (table,)).fetchone()
    assert row is not None
    return int(row[0])


def _jobs_seq_scans(conn: psycopg.Connection[Any]) -> int:
    return _table_stat(conn, "seq_scan")


def _jobs_index_reads(conn: psycopg.Connection[Any]) -> int:
    """Job rows fetched through an index."""
    return _table_stat(conn, "idx_tup_fetch")


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



def _statistics_of_a_drained_queue(admin: psycopg.Connection[Any]) -> None:
    """What the workers' own vacuum records after a burst: one live job in many
    pages. The planner then expects one job however long the queue grows."""
    admin.execute("INSERT INTO perdure.jobs (kind, run_id, due_at, created_at)"
                  " SELECT 'step', 'old' || g, 1e12, 0 FROM generate_series(1, 3000) g")
    admin.execute("DELETE FROM perdure.jobs WHERE run_id <> 'old3000'")
    admin.execute("VACUUM perdure.jobs")


def _a_busy_queue(admin: psycopg.Connection[Any]) -> None:
    """2,000 jobs due, and 500 other workers' live leases on other runs."""
    admin.execute("INSERT INTO perdure.jobs (kind, run_id, due_at, created_at)"
                  " SELECT 'workflow', 'r' || g, 0, 0 FROM generate_series(1, 2000) g")
    admin.execute("INSERT INTO perdure.jobs (kind, run_id, due_at, claimed_by,"
                  " lease_expires_at, created_at) SELECT 'workflow', 'busy' || g, 0,"
                  " 'other', 1e12, 0 FROM generate_series(1, 500) g")


def test_claim_and_ack_read_their_jobs_not_the_queue_when_statistics_say_it_is_empty(
    pg_world: PostgresWorld, pg_url: str, admin: psycopg.Connection[Any],
) -> None:
    # 0002's claim read the queue for every candidate (4 million rows to claim 10
    # of 2,000 here); its held-back check read every due job on each ack.
    _statistics_of_a_drained_queue(admin)
    with psycopg.connect(pg_url) as conn:  # one session: its plans persist
        with conn.transaction():  # plans made now, on the statistics above
            conn.execute("SELECT * FROM perdure.claim_jobs('w', 10, 60, '{workflow}')")
            conn.execute("SELECT perdure._ack('{}'::bigint[], 'w', perdure.clock())")
        _a_busy_queue(admin)
        with conn.transaction():
            claimed = [row[0] for row in conn.execute(
                "SELECT id FROM perdure.claim_jobs('w', 10, 60, '{workflow}')")]
            claim_reads = _jobs_index_reads(conn)
            conn.execute("SELECT perdure._ack(%s::bigint[], 'w', perdure.clock())", (claimed,))
            ack_reads = _jobs_index_reads(conn) - claim_reads
    assert len(claimed) == 10
    assert claim_reads <= 4 * len(claimed), f"{claim_reads} job rows read to claim 10"
    assert ack_reads <= 4 * len(claimed), f"{ack_reads} job rows read to ack 10"
    left = admin.execute("SELECT count(*) FROM perdure.jobs WHERE id = ANY (%s)", (claimed,))
    assert left.fetchone() == (0,)


def test_release_reads_its_jobs_not_the_queue_when_statistics_say_it_is_empty(
    pg_world: PostgresWorld, pg_url: str, admin: psycopg.Connection[Any],
) -> None:
    # A worker's shutdown releases what it holds. 0002 looked for each run's
    # unclaimed continuation in a way that could scan every due job (20,075 rows
    # read to release 10 of a 2,000-job queue).
    _statistics_of_a_drained_queue(admin)
    with psycopg.connect(pg_url) as conn:
        with conn.transaction():  # planned now, on the statistics above
            conn.execute("SELECT perdure.release_jobs('w', '{}'::bigint[])")
        _a_busy_queue(admin)
        held = [row[0] for row in admin.execute(
            "INSERT INTO perdure.jobs (kind, run_id, due_at, claimed_by, lease_expires_at,"
            " created_at) SELECT 'workflow', 'held' || g, 0, 'w', 1e12, 0"
            " FROM generate_series(1, 10) g RETURNING id")]
        folded = admin.execute(  # one held run already has an unclaimed continuation
            "INSERT INTO perdure.jobs (kind, run_id, due_at, created_at)"
            " VALUES ('workflow', 'held1', 1e12, 0) RETURNING id").fetchone()
        assert folded is not None
        with conn.transaction():
            conn.execute("SELECT perdure.release_jobs('w', %s::bigint[])", (held,))
            reads = _jobs_index_reads(conn)
    assert reads <= 4 * len(held), f"{reads} job rows read to release {len(held)}"
    rows = admin.execute("SELECT id, run_id, claimed_by, due_at FROM perdure.jobs"
                         " WHERE run_id LIKE 'held%%' ORDER BY run_id").fetchall()
    assert len(rows) == 10 and all(claimed is None for _, _, claimed, _ in rows)
    # held1's released job folded into its continuation, now due
    assert [(i, due < 1e12) for i, run, _, due in rows if run == "held1"] == [(folded[0], True)]



def _statistics_of_a_new_queue(admin: psycopg.Connection[Any]) -> None:
    """A queue no vacuum has seen yet (a new database, or one whose autovacuum has
    not come round): its indexes were built empty, and the planner expects a
    handful of jobs however long the queue grows."""
    admin.execute("TRUNCATE perdure.jobs")


def _statistics_of_an_idle_queue(admin: psycopg.Connection[Any]) -> None:
    """What a vacuum records of a queue its workers keep drained: a few due jobs in
    one page."""
    admin.execute("INSERT INTO perdure.jobs (kind, run_id, due_at, created_at)"
                  " SELECT 'workflow', 'idle' || g, 0, 0 FROM generate_series(1, 3) g")
    admin.execute("VACUUM ANALYZE perdure.jobs")
    admin.execute("DELETE FROM perdure.jobs")


@pytest.mark.parametrize("backlog", [2000, 20000])
@pytest.mark.parametrize("statistics", [_statistics_of_a_new_queue,
                                        _statistics_of_an_idle_queue])
def test_a_claim_planned_on_a_small_queue_reads_its_limit_not_the_backlog(
    pg_world: PostgresWorld, pg_url: str, admin: psycopg.Connection[Any], backlog: int,
    statistics: Callable[[psycopg.Connection[Any]], None],
) -> None:
    # A claim planned while the statistics said the queue was small read every
    # due job to sort them, then kept the first ten (a bitmap scan; migration
    # 0019): a backlog made each claim slower, and a slower worker let the backlog
    # grow (2,000 due jobs: 5.6 ms a claim).
    statistics(admin)
    admin.execute("INSERT INTO perdure.jobs (kind, run_id, due_at, created_at)"
                  " SELECT 'workflow', 'r' || g, g, 0 FROM generate_series(1, %s) g",
                  (backlog,))
    # a new session: the claim is planned now, on those statistics
    with psycopg.connect(pg_url) as conn, conn.transaction():
        claimed = [row[2] for row in conn.execute(
            "SELECT * FROM perdure.claim_jobs('w', 10, 60, '{workflow,step}')")]
        reads = _jobs_index_reads(conn)
    assert claimed == [f"r{g}" for g in range(1, 11)]  # the ten due first
    assert reads <= 4 * len(claimed), f"{reads} job rows read to claim 10 of {backlog}"


def test_a_batch_of_starts_planned_on_a_small_table_reads_its_runs_not_the_table(
    pg_world: PostgresWorld, pg_url: str, admin: psycopg.Connection[Any],
) -> None:
    # 0020's first draft joined the requests to the runs table: on a new database's
    # statistics the plan hashed every run for each batch.
    batch = ("SELECT id FROM perdure.create_runs(%s::text[], %s::text[], %s::text[],"
             " %s::text[], %s::float8[])")

    def requests(prefix: str) -> tuple[list[str], ...]:
        ids = [f"{prefix}{i}" for i in range(10)]
        return ["wf"] * 10, ["[]"] * 10, ids, [f"k-{i}" for i in ids], [None] * 10

    with psycopg.connect(pg_url) as conn:  # one session: its plans persist
        with conn.transaction():  # planned now, on a new database's statistics
            conn.execute(batch, requests("a"))
        admin.execute("INSERT INTO perdure.runs (id, workflow_name, status, created_at,"
                      " updated_at, last_seq) SELECT 'old' || g, 'wf', 'completed', 0, 0, 3"
                      " FROM generate_series(1, 3000) g")
        with conn.transaction():
            made = [row[0] for row in conn.execute(batch, requests("b"))]
            reads = _table_stat(conn, "idx_tup_fetch", "runs")
    assert made == [f"b{i}" for i in range(10)]
    assert reads <= 4 * len(made), f"{reads} run rows read to start {len(made)}"


def test_reading_run_ends_reads_those_runs_not_every_ended_run(
    pg_world: PostgresWorld, pg_url: str, admin: psycopg.Connection[Any],
) -> None:
    # read_ends (every Run.result() wait) was planned as a scan of all ended runs
    # through runs_status_id, filtered by id, when the statistics were taken while
    # most runs were running (seen in a throughput run: 1,444 rows read to find 15).
    # Analyzed while they ran: the planner expects next to no ended runs.
    admin.execute("INSERT INTO perdure.runs (id, workflow_name, status, created_at,"
                  " updated_at, last_seq) SELECT 'r' || g, 'wf', 'running', 0, 0, 1"
                  " FROM generate_series(1, 3000) g")
    admin.execute("ANALYZE perdure.runs")
    admin.execute("UPDATE perdure.runs SET status = 'completed'")
    admin.execute("INSERT INTO perdure.events (run_id, seq, event_type, data, created_at)"
                  " SELECT 'r' || g, 1, 'run_completed', '{\"output\": ' || g || '}', 0"
                  " FROM generate_series(1, 3000) g")
    wanted = [f"r{g}" for g in (7, 700, 2999)] + ["unknown"]
    with psycopg.connect(pg_url) as conn, conn.transaction():
        rows = conn.execute(Q["read_ends"], (wanted,)).fetchall()
        reads = _table_stat(conn, "idx_tup_fetch", "runs")
    assert sorted((row[0], row[4]) for row in rows) == [
        ("r2999", '{"output": 2999}'), ("r7", '{"output": 7}'), ("r700", '{"output": 700}')]
    assert reads <= 4 * len(wanted), f"{reads} run rows read to find {len(wanted)}"
