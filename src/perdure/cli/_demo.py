"""``perdure demo``: a checkout workflow on SQLite, narrated live from its own stream."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click

from .. import (
    Engine,
    RetryableError,
    StreamWriter,
    create_hook,
    get_writable,
    sleep,
    step,
    workflow,
)

_attempts: dict[str, int] = {}


@step(name="demo.fetch_order")
def fetch_order(order_id: str, progress: StreamWriter) -> dict[str, Any]:
    progress.write(f"fetched order {order_id}")
    return {"id": order_id, "items": ["book", "lamp", "mug"], "total": 42.5}


@step(name="demo.reserve_item")
async def reserve_item(sku: str, progress: StreamWriter) -> str:
    await asyncio.sleep(0.05)
    progress.write(f"reserved {sku} (in parallel)")
    return f"res-{sku}"


@step(name="demo.charge_card", retry_delay=0.3)
def charge_card(order: dict[str, Any], progress: StreamWriter) -> str:
    key = order["id"]
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] == 1:
        progress.write("card network timed out: the step will be retried")
        raise RetryableError("card network timeout", retry_after=0.3)
    progress.write(f"charged {order['total']} on attempt {_attempts[key]}")
    return f"receipt-{key}"


@step(name="demo.ship")
def ship(order: dict[str, Any], decision: dict[str, Any], progress: StreamWriter) -> str:
    progress.write(f"shipping, approved by {decision['by']}")
    progress.close()
    return f"shipment-{order['id']}"


@workflow(name="perdure-demo-checkout")
async def checkout(order_id: str) -> dict[str, Any]:
    progress = get_writable("progress")
    order = await fetch_order(order_id, progress)
    reservations = await asyncio.gather(*(reserve_item(sku, progress) for sku in order["items"]))
    receipt = await charge_card(order, progress)
    await sleep("1s")  # a durable timer: survives a restart
    decision = await create_hook(token=f"approve:{order_id}")
    shipment = await ship(order, decision, progress)
    return {"receipt": receipt, "reservations": reservations, "shipment": shipment}


@click.command()
@click.option("--order", "order_id", default=None, help="Order id (default: a new one).")
@click.pass_context
def demo(ctx: click.Context, order_id: str | None) -> None:
    """Run an example checkout on SQLite: steps, parallel steps, a retry, a durable
    sleep and a hook, with live progress read from the run's stream."""
    url = (ctx.find_root().obj or {}).get("database_url")
    if not url:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='perdure-demo-')) / 'demo.db'}"
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
