"""Connections: a psycopg pool, a cheap liveness check, one retry, error translation.

Every World call borrows a pooled connection (autocommit: each call is one
statement, one transaction), runs one named query and gives it back.

A connection that died while idle in the pool (server restart,
``pg_terminate_backend``) has a FATAL message or EOF waiting on its socket. The
check at borrow time polls the socket (no round trip); only when something is
waiting does it run psycopg_pool's ``check_connection``, and a dead connection is
discarded, the rest of the idle ones re-checked at once (after a restart they are
all dead), and another one borrowed.

A call that fails with ``OperationalError`` anyway is retried once on a fresh
connection when that is safe: reads and idempotent writes always; other writes only
when the server reported that it ended the session (SQLSTATE class 57P), since the
transaction of a terminated session rolls back. A write whose connection just
vanished mid-call may have committed, so it is not repeated: the error surfaces.
"""

from __future__ import annotations

import enum
import logging
import select
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import (
    EntityConflictError,
    HookTokenConflictError,
    RunNotFoundError,
    StaleStateError,
    WorkflowNotFoundError,
)
from .._sqlfile import load_queries

PACKAGE = "perdure.backends.postgres"
Q: dict[str, str] = load_queries(PACKAGE)

log = logging.getLogger(__name__)

T = TypeVar("T")
NEVER_AUTO_PREPARE = 2**31 - 1
HOT_CONNECTIONS = 2  # idle connections handed out again before the pool's (newest first)
HOT_SECONDS = 60.0  # then one goes back through the pool (its lifetime checks) once
Conn = psycopg.Connection[Any]


class Retry(enum.Enum):
    ALWAYS = "always"        # reads and idempotent writes
    IF_NOT_RUN = "if_not_run"  # other writes: only when the server ended the session
    NEVER = "never"


def translate(exc: psycopg.Error) -> Exception | None:
    """The perdure error for a refusal raised by our SQL, else None."""
    state = exc.sqlstate
    message = exc.diag.message_primary or str(exc)
    if state == "23505" and exc.diag.constraint_name == "steps_pkey":
        # append_events inserts a step's row without ON CONFLICT (migration 0017)
        return EntityConflictError(f"perdure: step_created refused: the step exists "
                                   f"({exc.diag.message_detail or message})")
    if state == "PD001" or state in ("23505", "23502"):
        return EntityConflictError(message)
    if state == "PD002":
        return StaleStateError(message)
    if state == "PD003":
        return HookTokenConflictError(exc.diag.message_detail or "")
    if state == "PD004":
        return RunNotFoundError(message)
    if state == "PD005":
        return WorkflowNotFoundError(message)
    if state in ("PD006", "22023"):
        return ValueError(message)
    return None


def _session_ended(exc: psycopg.OperationalError) -> bool:
    """The server ended the session (57P: a restart, ``pg_terminate_backend``)."""
    return (exc.sqlstate or "").startswith("57P")


def _retryable(exc: psycopg.OperationalError, retry: Retry) -> bool:
    if isinstance(exc, PoolTimeout) or retry is Retry.NEVER:
        return False
    if retry is Retry.ALWAYS:
        return True
    return _session_ended(exc)


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows: no poll()


def _alive(conn: Conn) -> bool:
    """False for a connection that is known dead. No round trip unless the server
    sent something while the connection sat idle (a FATAL, an EOF, a notice)."""
    if conn.closed or conn.broken:
        return False
    try:
        if not _readable(conn.fileno()):
            return True
        ConnectionPool.check_connection(conn)
    except (psycopg.Error, OSError, ValueError):
        return False
    return True


class Database:
    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        application_name: str = "perdure",
        prepare: bool = True,
    ) -> None:
        self.max_size = max_size
        self.prepare = prepare  # False behind a pooler that cannot keep prepared statements
        self._pids: weakref.WeakKeyDictionary[Conn, int] = weakref.WeakKeyDictionary()
        self._pids_lock = threading.Lock()
        self.pool: ConnectionPool[Conn] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            # Only the queries we mark are prepared (an automatically prepared
            # generic plan would be bad for the optional filters). Not None: that
            # would disable prepare=True too.
            kwargs={
                "autocommit": True,
                "prepare_threshold": NEVER_AUTO_PREPARE,
                "application_name": application_name,
            },
            name="perdure",
            num_workers=1,
            configure=self._remember_pid,
            open=False,
        )
        self.pool.open(wait=False)
        self._cursors: weakref.WeakKeyDictionary[Conn, psycopg.Cursor[Any]] = (
            weakref.WeakKeyDictionary())
        self._hot: list[Conn] = []  # idle, kept out of the pool; the newest last
        self._hot_until: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()
        self._hot_lock = threading.Lock()
        self._closed = False

    def _remember_pid(self, conn: Conn) -> None:
        with self._pids_lock:
            self._pids[conn] = conn.info.backend_pid

    def backend_pids(self) -> set[int]:
        """The server processes of this pool's open connections (the listener tells
        this process's own NOTIFYs by them)."""
        with self._pids_lock:
            return {pid for conn, pid in self._pids.items() if not conn.closed}

    def close(self) -> None:
        with self._hot_lock:
            self._closed = True  # from now on every connection given back goes to the pool
        self.cool()
        self.pool.close()

    # -- borrowing -----------------------------------------------------------------
    # psycopg_pool hands out its idle connections in turn (first in, first out), so
    # a sequential step went to a different backend each time, each with its own
    # caches to warm. The last connections given back are kept here and handed out
    # first, newest first: the hot path stays on one or two backends.
    def getconn(self) -> Conn:
        with self._hot_lock:
            conn = self._hot.pop() if self._hot else None
        if conn is not None:
            if _alive(conn):
                return conn
            self.pool.putconn(conn)
        for _ in range(self.max_size + 1):
            conn = self.pool.getconn()
            if _alive(conn):
                return conn
            log.info("discarding a dead pooled connection")
            self.pool.putconn(conn)
            self.pool.check()  # after a server restart every idle connection is dead
        return self.pool.getconn()

    def call(self, fn: Callable[[Conn], T], *, retry: Retry) -> T:
        """``fn(conn)`` on a borrowed connection, retried when safe, with our SQL's
        refusals raised as perdure errors. Once after a lost connection; after the
        server ended the session (57P: a restart, ``pg_terminate_backend``) as often
        as the pool has connections, since those end all at once and a connection
        whose backend is still exiting looks alive until its query fails."""
        retries = 0
        while True:
            try:
                return self._once(fn)
            except psycopg.OperationalError as exc:
                allowed = self.max_size if _session_ended(exc) else 1
                if retries >= allowed or not _retryable(exc, retry):
                    raise
                retries += 1
                log.warning("retrying after a lost connection: %s", exc)

    def _once(self, fn: Callable[[Conn], T]) -> T:
        conn = self.getconn()
        try:
            return fn(conn)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            mapped = translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            self.putconn(conn)

    def putconn(self, conn: Conn) -> None:
        # pgconn's status is a plain int; conn.info builds an object and an enum.
        if not conn.broken and conn.pgconn.transaction_status == TransactionStatus.IDLE:
            now = time.monotonic()
            with self._hot_lock:
                # A connection kept hot goes back through the pool now and then, so
                # the pool still retires it at its max_lifetime.
                until = self._hot_until.setdefault(conn, now + HOT_SECONDS)
                if len(self._hot) < HOT_CONNECTIONS and now < until and not self._closed:
                    self._hot.append(conn)
                    return
                self._hot_until.pop(conn, None)
        self.pool.putconn(conn)  # the pool rolls back, checks, or discards it

    def lent(self) -> int:
        """Connections out with callers now (not the idle ones kept hot)."""
        stats = self.pool.get_stats()
        with self._hot_lock:
            return stats.get("pool_size", 0) - stats.get("pool_available", 0) - len(self._hot)

    def cool(self) -> None:
        """Give the kept idle connections back to the pool (which then sees all)."""
        with self._hot_lock:
            hot, self._hot = self._hot, []
        for conn in hot:
            self.pool.putconn(conn)

    # -- one named query -----------------------------------------------------------
    def _cursor(self, conn: Conn) -> psycopg.Cursor[Any]:
        """The connection's kept cursor, for single-row calls. A cursor caches the
        dumpers and loaders of the types it has seen; a new cursor per call (what
        ``conn.execute`` makes) builds them again, about 50 us of Python a call. Only
        for one row: a kept cursor pins its last result while its connection idles."""
        cur = self._cursors.get(conn)
        if cur is None or cur.closed:
            cur = self._cursors[conn] = conn.cursor()
        return cur

    def one(
        self, name: str, params: Sequence[Any] | dict[str, Any], *,
        retry: Retry = Retry.ALWAYS, prepare: bool = True,
    ) -> tuple[Any, ...] | None:
        query, prepare = Q[name], prepare and self.prepare
        return self.call(
            lambda conn: self._cursor(conn).execute(query, params, prepare=prepare).fetchone(),
            retry=retry,
        )

    def run(
        self, name: str, params: Sequence[Any] | dict[str, Any], *,
        retry: Retry = Retry.ALWAYS, prepare: bool = True,
    ) -> None:
        query, prepare = Q[name], prepare and self.prepare
        self.call(lambda conn: self._cursor(conn).execute(query, params, prepare=prepare),
                  retry=retry)

    def all(
        self, name: str, params: Sequence[Any] | dict[str, Any], *,
        retry: Retry = Retry.ALWAYS, prepare: bool = True, binary: bool = False,
    ) -> list[tuple[Any, ...]]:
        """``binary``: results in binary format (bytea as its bytes, not hex text)."""
        query, prepare = Q[name], prepare and self.prepare
        return self.call(
            lambda conn: conn.execute(query, params, prepare=prepare, binary=binary).fetchall(),
            retry=retry,
        )
