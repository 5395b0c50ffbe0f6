"""What only the SQLite backend promises: its URL forms, WAL, migrations bookkeeping."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from perdure.backends import open_world
from perdure.backends.sqlite import SqliteWorld
from perdure.backends.sqlite._connection import parse_url


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


def test_every_connection_checkpoints_the_wal_every_64_mib(tmp_path: Path) -> None:
    """Each thread's connection: a wider checkpoint window than SQLite's 4 MiB, and
    the WAL truncated back to it afterwards (``_connection.py`` says why)."""
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
        assert settings == [(16384, 64 * 1024 * 1024)] * 2
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
