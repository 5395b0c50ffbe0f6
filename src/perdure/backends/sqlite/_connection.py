"""Connections, write transactions and migrations for the SQLite backend.

One connection per thread (sqlite3 connections must not be shared while in use),
autocommit mode (``isolation_level=None``) so that every write transaction is an
explicit ``BEGIN IMMEDIATE``: it takes the database's write lock up front, so
writers queue on the busy timeout instead of failing halfway with a lock upgrade,
and a run row read inside the transaction cannot change under the writer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...errors import EntityConflictError
from ...world import CommittedChunk, Notifier
from .._notify import LocalNotifier
from .._sqlfile import load_migrations, load_queries
from ._checkpoints import SAFETY_FACTOR, Checkpointer

PACKAGE = "perdure.backends.sqlite"
Q: dict[str, str] = load_queries(PACKAGE)
BUSY_TIMEOUT_S = 10.0
WAL_CHECKPOINT_BYTES = 64 * 1024 * 1024  # the log checkpointed at this size
PAGE_SIZE = 4096

Params = Mapping[str, Any]

# Writers of one database file in this process queue on a lock instead of on
# SQLite's busy handler, which sleeps in growing steps (up to 100 ms) while it
# polls; other processes still wait on the busy timeout.
_write_locks: dict[str, threading.RLock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(path: Path) -> threading.RLock:
    key = os.path.realpath(path)
    with _write_locks_guard:
        return _write_locks.setdefault(key, threading.RLock())


def parse_url(url: str) -> Path:
    """``sqlite:///rel/path.db`` or ``sqlite:////abs/path.db`` -> a filesystem path."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite URL {url!r}: use sqlite:///path/to/file.db")
    path = url[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ValueError("the SQLite backend needs a file (one connection per thread)")
    return Path(path)


def split_statements(script: str) -> list[str]:
    """Split a SQL script into statements, so a migration can run statement by
    statement inside our own transaction (``executescript`` would COMMIT first)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        not ln.strip() or ln.strip().startswith("--") for ln in buffer.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer!r}")
    return statements


class SqliteBase:
    """What every part of :class:`SqliteWorld` shares: the URL, the per-thread
    connections, the notifier, and the transaction helpers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = parse_url(url)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local_notifier = LocalNotifier()
        # Typed as the contract's Notifier (World declares it so); published to
        # through ``_publish`` right after each commit.
        self.notifier: Notifier = self._local_notifier
        self._write_lock = _write_lock(self.path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._checkpointer = Checkpointer(self.path, WAL_CHECKPOINT_BYTES, self._write_lock)

    def _publish(self, key: str, chunks: Sequence[CommittedChunk] | None = None) -> None:
        self._local_notifier.publish(key, chunks)

    # -- connections -------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise RuntimeError(f"{self.url}: this World is closed")
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _set_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoint every 64 MiB of WAL, not every 4 MiB (SQLite's default): the hot
        # pages (the run's row, the queue, the index pages) are rewritten by every
        # step, and a wider window copies each of them once instead of many times
        # (seq-50 12.5 -> 9.9 ms, a 1 MiB 5-step stream pipeline 40 -> 16 ms). The
        # checkpointer's thread does it (_checkpoints.py); a writer's own automatic
        # checkpoint is the safety net. journal_size_limit truncates the WAL file
        # back to 64 MiB when the log restarts (kept that long, its pages are
        # rewritten in place; and a file longer than that is a log longer than that).
        safety_pages = SAFETY_FACTOR * WAL_CHECKPOINT_BYTES // PAGE_SIZE
        conn.execute(f"PRAGMA wal_autocheckpoint = {safety_pages}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_CHECKPOINT_BYTES}")
        with self._lock:
            if self._closed:  # closed while this one was opening
                conn.close()
                raise RuntimeError(f"{self.url}: this World is closed")
            self._all.append(conn)
        self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close every thread's connection; the World is unusable afterwards."""
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        self._checkpointer.close()
        for conn in conns:
            conn.close()
        self._local = threading.local()
        self._local_notifier.wake_all()  # waiting readers notice the World closed at once

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``; any error rolls
        everything back, and a constraint failure surfaces as a perdure error."""
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise EntityConflictError(str(exc)) from exc
                raise
            self._checkpointer.committed()  # after the commit: never its error

    def _rows(self, name: str, params: Params) -> list[sqlite3.Row]:
        """Run a named read query outside any transaction; fetch everything so no
        statement is left open holding a WAL snapshot."""
        return self._conn().execute(Q[name], params).fetchall()

    def _row(self, name: str, params: Params) -> sqlite3.Row | None:
        rows = self._rows(name, params)
        return rows[0] if rows else None

    # -- schema --------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending migrations, each in its own ``BEGIN IMMEDIATE``: a process
        that loses the race finds the version recorded and skips it."""
        with self._write() as conn:
            conn.execute(Q["create_migrations_table"])
        version = 0
        for number, name, sql in load_migrations(PACKAGE):
            with self._write() as conn:
                applied = {row[0] for row in conn.execute(Q["applied_versions"]).fetchall()}
                if number not in applied:
                    for statement in split_statements(sql):
                        conn.execute(statement)
                    conn.execute(
                        Q["record_migration"], {"version": number, "name": name, "now": time.time()}
                    )
            version = number
        with self._write() as conn:
            rows = conn.execute(Q["applied_versions"]).fetchall()
        return max([version, *(int(row[0]) for row in rows)])


def _set_wal(conn: sqlite3.Connection) -> None:
    """WAL lets readers run beside the one writer. Switching needs a moment alone
    with the file, so a process racing another one retries briefly."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
