"""``SqliteWorld``: the World contract on one SQLite file.

Each part of the contract lives in its own module (event log, reads, job queue,
streams); this class only puts them together and adds the deployment registry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ._connection import Q
from ._eventlog import EventLog
from ._queue import JobQueue
from ._reads import Reads
from ._streams import Streams


class SqliteWorld(EventLog, Reads, JobQueue, Streams):
    """The World on SQLite (stdlib ``sqlite3``, WAL mode), for one machine.

    ``url``: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``; the
    parent folder is created. Wake-ups are in-process only (``LocalNotifier``):
    other processes find new work by polling.
    """

    def register_workflows(self, names: Sequence[str]) -> None:
        now = time.time()
        with self._write() as conn:
            conn.executemany(Q["register_workflow"], [{"name": n, "now": now} for n in names])

    def registered_workflows(self) -> list[str]:
        return [str(row["name"]) for row in self._rows("registered_workflows", {})]

    def __repr__(self) -> str:
        return f"SqliteWorld({self.url!r})"
