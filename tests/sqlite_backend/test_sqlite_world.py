"""What only the SQLite backend promises: its URL forms, WAL, migrations bookkeeping."""

from __future__ import annotations

import builtins
import sqlite3
import threading
from pathlib import Path

import pytest

from perdure.backends import open_world
from perdure.backends.sqlite import SqliteWorld, _connection
from perdure.backends.sqlite._connection import parse_url
from perdure.testing import wait_for
from perdure.world import NewJob


def test_url_forms() -> None:
    assert parse_url("sqlite:///rel/dir/x.db") == Path("rel/dir/x.db")
    assert parse_url("sqlite:////abs/x.db") == Path("/abs/x.db")
    for bad in ("sqlite://host/x.db", "sqlite:///", "sqlite:///:memory:", "postgresql:///x"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_relative_url_creates_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    world = open_world("sqlite:///a/b/perdure.db")
    try:
        assert isinstance(world, SqliteWorld)
        assert (tmp_path / "a" / "b" / "perdure.db").exists()
    finally:
        world.close()


def test_wal_and_migration_table(tmp_path: Path) -> None:
    world = open_world(f"sqlite:///{tmp_path}/p.db")
    world.close()
    conn = sqlite3.connect(tmp_path / "p.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = conn.execute("SELECT version, name FROM perdure_migrations").fetchall()
        assert rows == [(1, "init"), (2, "creation_by_entity_keys")]
    finally:
        conn.close()


def test_every_connection_leaves_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    """Each thread's connection: its own automatic checkpoint only as a safety net at
    256 MiB (the checkpointer's thread does them at 64 MiB), and the WAL file
    truncated back to 64 MiB when the log restarts (``_connection.py`` and
    ``_checkpoints.py``)."""
    world = SqliteWorld(f"sqlite:///{tmp_path}/p.db")
    try:
        settings: list[tuple[int, int]] = []

        def read() -> None:
            conn = world._conn()
            settings.append((conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0],
                             conn.execute("PRAGMA journal_size_limit").fetchone()[0]))

        read()
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
        assert settings == [(65536, 64 * 1024 * 1024)] * 2
    finally:
        world.close()


def test_close_closes_every_thread_connection(tmp_path: Path) -> None:
    world = SqliteWorld(f"sqlite:///{tmp_path}/p.db")
    world.migrate()
    conns: list[sqlite3.Connection] = []

    def use() -> None:
        world.list_jobs()
        conns.append(world._conn())

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    conns.append(world._conn())
    world.close()
    for conn in conns:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
    with pytest.raises(RuntimeError):
        world.list_jobs()


def test_the_wal_is_checkpointed_beside_the_writers_and_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A writer's commit never runs the checkpoint (a 267 ms wait for a live
    stream's chunk in a bench run): the checkpointer's thread does, and the log
    restarts, so it stays near its threshold, below the writers' safety net."""
    threshold = 1024 * 1024
    monkeypatch.setattr(_connection, "WAL_CHECKPOINT_BYTES", threshold)
    opened: list[str] = []  # a close of any fd of the database drops SQLite's locks on it
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (opened.append(str(f)),
                                                               real_open(f, *a, **k))[1])
    world = SqliteWorld(f"sqlite:///{tmp_path}/p.db")
    wal = tmp_path / "p.db-wal"
    try:
        with world._write() as conn:
            conn.execute("CREATE TABLE filler (data BLOB)")
        largest = 0
        for _ in range(8):  # bursts of 1.25 MiB, in 16 KiB commits
            done = world._checkpointer.checkpoints
            for _ in range(80):
                with world._write() as conn:
                    conn.execute("INSERT INTO filler VALUES (randomblob(16384))")
                largest = max(largest, wal.stat().st_size)
            wait_for(lambda: world._checkpointer.checkpoints > done,  # noqa: B023
                     what="a checkpoint by the checkpointer's thread")
        assert largest < 3 * threshold, largest  # the writers' safety net is at 4
        assert not [f for f in opened if f.startswith(str(tmp_path / "p.db"))]
    finally:
        world.close()


def test_a_claim_that_can_find_nothing_does_not_take_the_write_lock(tmp_path: Path) -> None:
    """An idle worker polls every 50 ms: a claim that would find nothing must not
    queue the file's writers behind a write transaction. Another connection holds
    the write lock here; a claim that asked for it would fail after the 0.1 s busy
    timeout set below instead of answering."""
    world = open_world(f"sqlite:///{tmp_path}/p.db")
    other = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    try:
        assert isinstance(world, SqliteWorld)
        world._conn().execute("PRAGMA busy_timeout = 100")
        run, _ = world.create_run("wf", "[]", run_id="r-held")
        [held] = world.claim("w-1", limit=5, lease_seconds=30)  # its job, leased now
        assert held.run_id == run.id
        other.execute("BEGIN IMMEDIATE")
        assert world.claim("w-2", limit=5, lease_seconds=30) == []
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            world.enqueue([NewJob("workflow", "r-held", due_at=0.0)])
    finally:
        other.close()
        world.close()
