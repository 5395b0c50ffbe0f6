"""What every subcommand shares: the engine from the global options, errors, output."""

from __future__ import annotations

import json
from typing import Any

import click

from .._engine import Engine
from ..errors import PerdureError


class CliError(click.ClickException):
    """A one-line error and a non-zero exit."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def open_engine(ctx: click.Context, **kwargs: Any) -> Engine:
    url = (ctx.find_root().obj or {}).get("database_url")
    try:
        return Engine(url, **kwargs)
    except PerdureError as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - unreachable database, bad URL
        raise CliError(f"cannot open the database: {exc}") from exc


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))
