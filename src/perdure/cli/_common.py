"""What every subcommand shares: the engine from the global options, errors, output."""

from __future__ import annotations

import json
from typing import Any

import click

from .._engine import Engine
from ..backends import resolve_url
from ..errors import PerdureError


class CliError(click.ClickException):
    """A one-line error and a non-zero exit."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


CONNECT_TIMEOUT = 5


def check_reachable(url: str) -> None:
    """One plain connection with a short timeout: a connection pool would retry in
    the background for its whole timeout (30 s) before giving up, and a person at a
    terminal wants one clear line at once."""
    if not url.startswith(("postgresql://", "postgres://")):
        return
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True).close()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the message
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"cannot open the database: {reason}") from None


def open_engine(ctx: click.Context, *, fail_fast: bool = True, **kwargs: Any) -> Engine:
    """The engine for a subcommand. ``fail_fast``: an unreachable database is a
    one-line error at once; a worker passes False, to ride out a server restart."""
    url = resolve_url((ctx.find_root().obj or {}).get("database_url"))
    if fail_fast:
        check_reachable(url)
    try:
        return Engine(url, **kwargs)
    except PerdureError as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - unreachable database, bad URL
        raise CliError(f"cannot open the database: {exc}") from exc


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))
