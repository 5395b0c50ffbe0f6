"""Open the engine for a CLI command, failing fast on an unreachable database.

A connection pool retries in the background for its whole timeout (30 s) before
it gives up; a person at a terminal wants one clear line at once. So for Postgres
one plain connection is tried first, with a short timeout.
"""

from __future__ import annotations

from typing import Any

import click

from .._engine import Engine
from ..backends import resolve_url
from ._common import CliError, open_engine

CONNECT_TIMEOUT = 5


def check_reachable(url: str) -> None:
    if not url.startswith(("postgresql://", "postgres://")):
        return
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True).close()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the message
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"cannot open the database: {reason}") from None


def engine_for(ctx: click.Context, **kwargs: Any) -> Engine:
    check_reachable(resolve_url((ctx.find_root().obj or {}).get("database_url")))
    return open_engine(ctx, **kwargs)
