from __future__ import annotations

import click

from ..backends import open_world, resolve_url
from ._common import CliError


@click.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade perdure's tables (also done by every engine at start)."""
    url = resolve_url(ctx.find_root().obj.get("database_url"))
    try:
        world = open_world(url, migrate=False)
        version = world.migrate()
        world.close()
    except Exception as exc:  # noqa: BLE001
        raise CliError(f"migration failed: {exc}") from exc
    click.echo(f"schema at version {version}")
