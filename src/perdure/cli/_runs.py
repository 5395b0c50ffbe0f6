"""``perdure runs list|show|events|cancel``: see and steer runs from a terminal."""

from __future__ import annotations

from typing import Any

import click

from ..errors import RunNotFoundError
from ..web import _views as views
from ._common import CliError, open_engine
from ._output import (
    compact,
    duration,
    echo_json,
    seconds_between,
    short_time,
    table,
)


def _time_option(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return views.parse_time(value)
    except ValueError as exc:
        raise CliError(f"{name}: {exc}") from None


@click.group()
def runs() -> None:
    """List, inspect and cancel runs."""


@runs.command("list")
@click.option("--status", type=click.Choice(views.RUN_STATUSES), default=None,
              help="Only runs in this status.")
@click.option("--workflow", default=None, help="Only runs of this workflow.")
@click.option("--since", default=None,
              help="Created after: ISO time (2025-01-31T12:00Z) or a duration ago (1h, 2d).")
@click.option("--until", default=None, help="Created before: ISO time or a duration ago.")
@click.option("--limit", type=click.IntRange(1, views.MAX_LIMIT), default=50, show_default=True)
@click.option("--cursor", default=None, help="Continue after a previous page.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def list_runs(ctx: click.Context, status: str | None, workflow: str | None, since: str | None,
              until: str | None, limit: int, cursor: str | None, as_json: bool) -> None:
    """Runs, newest first."""
    after = _time_option(since, "--since")
    before = _time_option(until, "--until")
    engine = open_engine(ctx)
    try:
        page = views.list_runs(engine.world, status=status, workflow=workflow, since=after,
                               until=before, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.shutdown()
    if as_json:
        echo_json(page)
        return
    if not page["runs"]:
        click.echo("no runs")
        return
    table(["ID", "WORKFLOW", "STATUS", "CREATED (UTC)", "DURATION"],
          [[r["id"], r["workflow"], r["status"], short_time(r["created_at"]),
            duration(r["duration_seconds"])] for r in page["runs"]])
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}", err=True)


def _detail(ctx: click.Context, run_id: str) -> dict[str, Any]:
    engine = open_engine(ctx)
    try:
        return views.run_detail(engine.world, run_id)
    except (RunNotFoundError, ValueError) as exc:
        raise CliError(f"no run {run_id!r}" if isinstance(exc, RunNotFoundError)
                       else str(exc)) from None
    finally:
        engine.shutdown()


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def show_run(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """A run: status, timings, input, output, error, steps with attempts, waits, hooks."""
    run = _detail(ctx, run_id)
    if as_json:
        echo_json(run)
        return
    rows: list[tuple[str, str]] = [
        ("run", run["id"]), ("workflow", run["workflow"]), ("status", run["status"]),
        ("created", short_time(run["created_at"])), ("started", short_time(run["started_at"])),
        ("ended", short_time(run["completed_at"])),
        ("duration", duration(run["duration_seconds"])),
    ]
    if run["idempotency_key"]:
        rows.append(("key", run["idempotency_key"]))
    rows.append(("input", compact(run["input"])))
    if run["status"] == "completed":
        rows.append(("output", compact(run["output"])))
    for label, value in rows:
        click.echo(f"{label:<10} {value}")
    if run["error"]:
        _echo_error(run["error"], "error      ")
    _echo_steps(run["steps"])
    if run["waits"]:
        click.echo(f"\nwaits ({len(run['waits'])})")
        table(["CORRELATION", "STATUS", "CREATED", "RESUME AT"],
              [[w["correlation_id"], w["status"], short_time(w["created_at"]),
                short_time(w["resume_at"])] for w in run["waits"]], indent="  ")
    if run["hooks"]:
        click.echo(f"\nhooks ({len(run['hooks'])})")
        table(["TOKEN", "STATUS", "WEBHOOK", "RECEIVED", "CREATED"],
              [[h["token"], h["status"], "yes" if h["is_webhook"] else "no", h["received"],
                short_time(h["created_at"])] for h in run["hooks"]], indent="  ")
    if run["streams"]:
        click.echo(f"\nstreams ({len(run['streams'])})")
        table(["NAME", "CHUNKS", "CLOSED"],
              [[s["name"], s["chunks"], "yes" if s["closed"] else "no"]
               for s in run["streams"]], indent="  ")
    click.echo(f"\n{run['event_count']} events: perdure runs events {run['id']}")


def _echo_error(error: dict[str, Any], prefix: str) -> None:
    click.echo(f"{prefix}{error.get('type', 'Error')}: {error.get('message', '')}")
    for line in (error.get("traceback") or "").rstrip().splitlines():
        click.echo(" " * len(prefix) + line)


def _echo_steps(steps: list[dict[str, Any]]) -> None:
    if not steps:
        return
    click.echo(f"\nsteps ({len(steps)})")
    rows = []
    for s in steps:
        rows.append([s["name"], s["status"], s["attempt"], short_time(s["started_at"]),
                     duration(seconds_between(s["started_at"], s["completed_at"])),
                     compact(s["output"] if s["status"] == "completed" else s["error"], 50)])
        if len(s["attempts"]) > 1:
            for a in s["attempts"]:
                err = a["error"] or {}
                note = f"{err.get('type', '')}: {err.get('message', '')}" if err else ""
                rows.append([f"  attempt {a['attempt']}", a["status"], "",
                             short_time(a["started_at"]),
                             duration(seconds_between(a["started_at"], a["ended_at"])),
                             note[:50]])
    table(["NAME", "STATUS", "ATTEMPTS", "STARTED", "TOOK", "OUTPUT / ERROR"], rows,
          indent="  ")


@runs.command("events")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def run_events(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """A run's event log, in order."""
    engine = open_engine(ctx)
    try:
        events = views.list_events(engine.world, run_id)["events"]
    except (RunNotFoundError, ValueError):
        raise CliError(f"no run {run_id!r}") from None
    finally:
        engine.shutdown()
    if as_json:
        echo_json(events)
        return
    table(["SEQ", "TIME (UTC)", "TYPE", "CORRELATION", "DATA"],
          [[e["seq"], short_time(e["created_at"]), e["type"], e["correlation_id"] or "-",
            compact(e["data"], 80)] for e in events])


@runs.command("cancel")
@click.argument("run_id")
@click.pass_context
def cancel_run(ctx: click.Context, run_id: str) -> None:
    """Cancel a run: no pending step starts, running async steps are cancelled."""
    engine = open_engine(ctx)
    try:
        views.get_run_record(engine.world, run_id)
        cancelled = engine.get_run(run_id).cancel()
        status = views.get_run_record(engine.world, run_id).status
    except (RunNotFoundError, ValueError):
        raise CliError(f"no run {run_id!r}") from None
    finally:
        engine.shutdown()
    if cancelled:
        click.echo(f"cancelled run {run_id}")
    else:
        click.echo(f"run {run_id} had already ended: {status}")


COMMANDS = [runs]
