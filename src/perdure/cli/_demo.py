"""``perdure demo``: a checkout workflow on SQLite, narrated live from its own stream."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import click

from .. import Engine


@click.command()
@click.option("--order", "order_id", default=None, help="Order id (default: a new one).")
@click.pass_context
def demo(ctx: click.Context, order_id: str | None) -> None:
    """Run an example checkout on SQLite: steps, parallel steps, a retry, a durable
    sleep and a hook, with live progress read from the run's stream."""
    url = (ctx.find_root().obj or {}).get("database_url")
    if not url:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='perdure-demo-')) / 'demo.db'}"
    from ._demo_app import checkout

    order_id = order_id or f"o-{int(time.time())}"
    click.echo(f"perdure demo on {url}")
    started = time.monotonic()
    with Engine(url) as engine:
        run = engine.start(checkout, order_id)
        click.echo(f"started run {run.id}")
        approver = threading.Thread(target=_approve, args=(engine, order_id), daemon=True)
        approver.start()
        for chunk in run.stream("progress"):
            click.echo(f"  [{time.monotonic() - started:5.2f}s] {chunk}")
        result = run.result(timeout=60)
        click.echo(f"result: {result}")
        steps = run.steps()
        retried = [s.name for s in steps if s.attempt > 1]
        click.echo(f"{len(run.events())} events, {len(steps)} steps, retried: {retried}")
        click.echo(f"status: {run.status()} in {time.monotonic() - started:.2f}s")


def _approve(engine: Engine, order_id: str) -> None:
    """Plays the human: resumes the approval hook as soon as it exists."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if engine.world.get_hook_by_token(f"approve:{order_id}") is not None:
            engine.resume_hook(f"approve:{order_id}", {"by": "the demo", "ok": True})
            return
        time.sleep(0.05)
