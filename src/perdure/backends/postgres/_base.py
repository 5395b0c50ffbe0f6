"""What every part of :class:`PostgresWorld` shares (typed here for the mixins)."""

from __future__ import annotations

from ._db import Database
from ._listener import PgNotifier


class PostgresBase:
    url: str
    notifier: PgNotifier
    _db: Database
