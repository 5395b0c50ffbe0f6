"""PostgresWorld: the World on PostgreSQL (schema ``perdure``).

Made of one part per concept, each in its own module: the event log and its
projections (``_eventlog``), the job queue (``_queue``), streams (``_streams``),
wake-ups (``_listener``), schema (``_migrate``) and connections (``_db``).
"""

from __future__ import annotations

from .._notify import LocalNotifier
from ._db import Database
from ._eventlog import EventLog
from ._listener import Listener, PgNotifier
from ._migrate import migrate
from ._queue import JobQueue
from ._streams import Streams


class PostgresWorld(EventLog, JobQueue, Streams):
    """The World on PostgreSQL.

    ``min_connections``/``max_connections`` size the pool (plus one listening
    connection, opened with the first subscription). ``listen=False`` runs without
    LISTEN: subscriptions then wake only for this process's own writes (and
    ``wake_all``), and readers rely on polling. ``prepare=False`` stops using
    server-side prepared statements (for a transaction-mode pooler in between).
    """

    def __init__(
        self,
        url: str,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        pool_timeout: float = 30.0,
        listen: bool = True,
        prepare: bool = True,
    ) -> None:
        self.url = url
        self._db = Database(
            url, min_size=min_connections, max_size=max_connections, timeout=pool_timeout,
            prepare=prepare,
        )
        local = LocalNotifier()
        self.listener = Listener(url, local, own_pids=self._db.backend_pids) if listen else None
        self.notifier = PgNotifier(local, self.listener)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def migrate(self) -> int:
        return migrate(self._db)

    def close(self) -> None:
        """Stop the listener and close every connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.notifier.close()
        self._db.close()

    def __enter__(self) -> PostgresWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PostgresWorld {self._db.pool.conninfo!r}>"
