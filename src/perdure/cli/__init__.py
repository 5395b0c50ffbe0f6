"""The ``perdure`` command. Each group of subcommands lives in its own module."""

from __future__ import annotations

import logging
import sys

import click

from ._common import CliError
from ._demo import demo
from ._migrate import migrate
from ._worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar="PERDURE_DATABASE_URL", default=None,
              help="postgresql://... or sqlite:///path (default: PERDURE_DATABASE_URL, "
                   "else sqlite:///.perdure/perdure.db)")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, verbose: int) -> None:
    """perdure: durable workflows on PostgreSQL and SQLite."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["database_url"] = database_url


for command in (worker, migrate, demo):
    cli.add_command(command)


def _add_optional_commands() -> None:
    """Commands whose modules import heavier dependencies load only when present."""
    from . import _extra

    for command in _extra.commands():
        cli.add_command(command)


_add_optional_commands()


def main() -> None:
    try:
        cli(standalone_mode=False)
    except CliError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
