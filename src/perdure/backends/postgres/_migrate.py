"""Versioned migrations (``migrations/NNNN_name.sql``), applied once per database.

Many processes may call ``migrate()`` at once (every worker does on start): they
queue on a session advisory lock, and each migration commits together with its row
in ``perdure.migrations``, so whoever gets the lock next finds it recorded. A
database already up to date is answered without taking the lock.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from .._sqlfile import load_migrations
from ._db import PACKAGE, Database, Q, Retry

log = logging.getLogger(__name__)

# pg_advisory_lock key: "perdure" in ASCII, as a bigint.
MIGRATE_LOCK_KEY = int.from_bytes(b"perdure", "big")


def current_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(Q["has_migrations_table"]).fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute(Q["schema_version"]).fetchone()
    return int(row[0]) if row else 0


def migrate(db: Database) -> int:
    """Apply pending migrations; returns the schema version."""
    return db.call(_migrate, retry=Retry.ALWAYS)


def _migrate(conn: psycopg.Connection[Any]) -> int:
    migrations = load_migrations(PACKAGE)
    version = current_version(conn)
    if migrations and version >= migrations[-1][0]:
        return version
    conn.execute(Q["migrate_lock"], (MIGRATE_LOCK_KEY,))
    try:
        conn.execute(Q["create_migrations_table"])
        applied = {row[0] for row in conn.execute(Q["applied_versions"]).fetchall()}
        for number, name, sql in migrations:
            if number in applied:
                continue
            log.info("applying migration %04d_%s", number, name)
            with conn.transaction():
                conn.execute(sql.encode())  # several statements: simple query protocol
                conn.execute(Q["record_migration"], (number, name))
        return current_version(conn)
    finally:
        if not conn.closed:
            conn.execute(Q["migrate_unlock"], (MIGRATE_LOCK_KEY,))
