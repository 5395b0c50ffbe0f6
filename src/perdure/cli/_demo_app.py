"""The demo's workflow: a checkout with steps, parallel steps, a retry, a durable
sleep and a hook. Imported only by ``perdure demo``, so other commands do not
register it."""

from __future__ import annotations

import asyncio
from typing import Any

from .. import RetryableError, StreamWriter, create_hook, get_writable, sleep, step, workflow

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
