"""``perdure hooks resume|list``: deliver payloads to waiting runs."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import HookNotFoundError, SerializationError
from ..web import _views as views
from ._common import CliError, open_engine
from ._output import echo_json, short_time, table


@click.group()
def hooks() -> None:
    """Resume and list hooks."""


def _payload(text: str) -> Any:
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"bad JSON payload: {exc}") from None


@hooks.command("resume")
@click.argument("token")
@click.argument("payload", metavar="JSON")
@click.pass_context
def resume(ctx: click.Context, token: str, payload: str) -> None:
    """Deliver JSON (a JSON text, or - to read it from stdin) to the live hook TOKEN."""
    value = _payload(payload)
    engine = open_engine(ctx)
    try:
        engine.resume_hook(token, value)
    except HookNotFoundError:
        raise CliError(f"no live hook with token {token!r}") from None
    except (SerializationError, ValueError) as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.shutdown()
    click.echo(f"resumed hook {token}")


@hooks.command("list")
@click.option("--run", "run_id", default=None, help="Only this run's hooks.")
@click.option("--status", type=click.Choice(["active", "disposed"]), default="active",
              show_default=True)
@click.option("--all", "show_all", is_flag=True, help="Every status.")
@click.option("--limit", type=click.IntRange(1, views.MAX_LIMIT), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def list_hooks(ctx: click.Context, run_id: str | None, status: str, show_all: bool, limit: int,
               as_json: bool) -> None:
    """Hooks, live ones by default."""
    engine = open_engine(ctx)
    try:
        page = engine.world.list_hooks(run_id=run_id, status=None if show_all else status,
                                       limit=limit)
    finally:
        engine.shutdown()
    found = [views.hook_view(h) for h in page.items]
    if as_json:
        echo_json({"hooks": found, "next_cursor": page.next_cursor})
        return
    if not found:
        click.echo("no hooks")
        return
    table(["TOKEN", "RUN", "STATUS", "WEBHOOK", "CREATED (UTC)"],
          [[h["token"], h["run_id"], h["status"], "yes" if h["is_webhook"] else "no",
            short_time(h["created_at"])] for h in found])


COMMANDS = [hooks]
