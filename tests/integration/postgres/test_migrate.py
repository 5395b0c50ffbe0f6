"""Migrations: versioned, recorded, applied once however many processes race."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import psycopg
import pytest

from perdure.backends._sqlfile import load_migrations
from perdure.backends.postgres import PostgresWorld
from perdure.world import uuid7

pytestmark = pytest.mark.postgres

MIGRATIONS = load_migrations("perdure.backends.postgres")
LATEST = MIGRATIONS[-1][0]


def _recorded(admin: psycopg.Connection[Any]) -> list[tuple[int, str]]:
    return [(r[0], r[1]) for r in admin.execute(
        "SELECT version, name FROM perdure.migrations ORDER BY version").fetchall()]


def test_migrate_records_every_version(pg_url: str, admin: psycopg.Connection[Any]) -> None:
    with PostgresWorld(pg_url, listen=False) as world:
        assert world.migrate() == LATEST
        assert world.migrate() == LATEST  # up to date: nothing to do
    assert _recorded(admin) == [(v, name) for v, name, _ in MIGRATIONS]
    tables = {r[0] for r in admin.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'perdure'").fetchall()}
    assert tables == {"runs", "events", "steps", "waits", "hooks", "jobs", "chunks",
                      "workflows", "migrations"}


def test_threads_migrate_once(pg_url: str, admin: psycopg.Connection[Any]) -> None:
    worlds = [PostgresWorld(pg_url, listen=False) for _ in range(4)]
    barrier = threading.Barrier(len(worlds))
    versions: list[int] = []
    errors: list[BaseException] = []

    def go(world: PostgresWorld) -> None:
        try:
            barrier.wait()
            versions.append(world.migrate())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(w,)) for w in worlds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for w in worlds:
        w.close()
    assert not errors
    assert versions == [LATEST] * 4
    assert _recorded(admin) == [(v, name) for v, name, _ in MIGRATIONS]


def _migrate_in_process(url: str, start: Any, out: Any) -> None:
    world = PostgresWorld(url, listen=False)
    try:
        start.wait(30)
        out.put(world.migrate())
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.put(repr(exc))
    finally:
        world.close()


def test_processes_migrate_once(pg_url: str, admin: psycopg.Connection[Any]) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_migrate_in_process, args=(pg_url, start, out))
             for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert results == [LATEST] * 4
    assert _recorded(admin) == [(v, name) for v, name, _ in MIGRATIONS]


def test_event_data_compresses_with_lz4_when_the_server_has_it(
        pg_world: PostgresWorld, admin: psycopg.Connection[Any]) -> None:
    """pglz cost about three times lz4's instructions on a 10 KB JSON document
    (migration 0013): where the server was built with lz4, event data uses it."""
    has_lz4 = admin.execute(
        "SELECT 'lz4' = ANY (enumvals) FROM pg_settings "
        "WHERE name = 'default_toast_compression'").fetchone()
    method = admin.execute(
        "SELECT attcompression FROM pg_attribute "
        "WHERE attrelid = 'perdure.events'::regclass AND attname = 'data'").fetchone()
    assert method is not None
    assert method[0] == ("l" if has_lz4 and has_lz4[0] else "")
    run_id = uuid7()
    pg_world.create_run("wf", "[" + ", ".join(['{"k": "value"}'] * 2000) + "]", run_id=run_id)
    stored = admin.execute(
        "SELECT pg_column_compression(data) FROM perdure.events "
        "WHERE run_id = %s AND seq = 1", (run_id,)).fetchone()
    assert stored == (("lz4" if has_lz4 and has_lz4[0] else "pglz"),)


def test_a_database_at_the_first_0014_upgrades(
        pg_url: str, admin: psycopg.Connection[Any]) -> None:
    """Migration 0014 was revised after it had landed: its first version had no
    perdure._held_back, which append_events asks from 0016 on. A database migrated
    then (simulated: 0001 to 0014, that function dropped) upgrades, and an append
    acking a workflow job, the call that asks it, works."""
    from perdure.backends.postgres._db import Q
    from perdure.world import NewEvent

    admin.execute(Q["create_migrations_table"])
    for number, name, sql in MIGRATIONS:
        if number <= 14:
            admin.execute(sql.encode())
            admin.execute(Q["record_migration"], (number, name))
    admin.execute("DROP FUNCTION perdure._held_back(text[], float8)")
    with PostgresWorld(pg_url, listen=False) as world:
        assert world.migrate() == LATEST
        run_id = uuid7()
        world.create_run("wf", "[]", run_id=run_id)
        [job] = world.claim("w1", limit=1, lease_seconds=30)
        world.append(run_id, [NewEvent("run_started")], ack=[job.id])
        assert world.list_jobs(run_id=run_id) == []
