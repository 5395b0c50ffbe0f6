"""Workflows the start-in-transaction tests run (names prefixed ``tx_``, plus
``process_order``, the one the orders trigger starts by name)."""

from __future__ import annotations

from typing import Any

import psycopg

from perdure import create_hook, step, workflow

# The database the ``read_order`` step reads the application's ``orders`` table
# from, on its own connection (set by the ``orders`` fixture).
DATABASE: dict[str, str] = {}


@step
def tx_double(x: int) -> int:
    return 2 * x


@workflow
async def tx_double_wf(x: int) -> int:
    return await tx_double(x)


@step
def tx_echo(value: Any) -> Any:
    return value


@workflow
async def tx_echo_wf(*args: Any) -> list[Any]:
    """Returns its positional arguments, passed through a step."""
    return list(await tx_echo(list(args)))


@workflow
async def tx_hook_wf(token: str) -> Any:
    payload = await create_hook(token=token)
    return await tx_echo(payload)


@step
def read_order(order_id: str) -> dict[str, Any] | None:
    """Reads the order row that started this run, on a connection of its own."""
    with psycopg.connect(DATABASE["url"], autocommit=True) as conn:
        row = conn.execute("SELECT id, item, qty FROM orders WHERE id = %s",
                           (order_id,)).fetchone()
    return None if row is None else {"id": row[0], "item": row[1], "qty": row[2]}


@workflow
async def process_order(order_id: str) -> dict[str, Any] | None:
    return await read_order(order_id)
