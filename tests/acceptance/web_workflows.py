"""Workflows the CLI, API and UI tests drive. A plain module: `perdure web --app`
and `perdure worker` subprocesses can load it by path too."""

from __future__ import annotations

import asyncio
import threading

from perdure import (
    RetryableError,
    StreamWriter,
    create_hook,
    create_webhook,
    current_step,
    get_writable,
    sleep,
    step,
    workflow,
)

# Steps that wait for the test: the test sets the gate (in-process worker only).
GATES: dict[str, threading.Event] = {}
_gates_lock = threading.Lock()


def gate(name: str) -> threading.Event:
    with _gates_lock:
        return GATES.setdefault(name, threading.Event())


@step(name="web.publish")
def publish(writer: StreamWriter, chunk: object) -> int:
    return writer.write(chunk)


@step(name="web.close_stream")
def close_stream(writer: StreamWriter) -> None:
    writer.close()


@step(name="web.wait_for_gate")
def wait_for_gate(name: str) -> str:
    if not gate(name).wait(60):
        raise RuntimeError(f"gate {name} was never opened")
    return name


@step(name="web.double")
def double(x: int) -> int:
    return 2 * x


@step(name="web.flaky", max_retries=3, retry_delay=0.05)
def flaky(fail_times: int) -> str:
    ctx = current_step()
    assert ctx is not None
    if ctx.attempt <= fail_times:
        raise RetryableError(f"attempt {ctx.attempt} fails", retry_after=0.05)
    return f"ok on attempt {ctx.attempt}"


@step(name="web.explode", max_retries=0)
def explode(message: str) -> None:
    raise ValueError(message)


@workflow(name="web.quick")
async def quick(x: int) -> dict[str, int]:
    return {"doubled": await double(x)}


@workflow(name="web.retrying")
async def retrying(fail_times: int) -> str:
    return await flaky(fail_times)


@workflow(name="web.failing")
async def failing(message: str) -> None:
    await explode(message)


@workflow(name="web.streamer")
async def streamer(chunks: list[object], gate_name: str) -> int:
    """Writes ``chunks`` to stream "out", waits for the gate, then writes the
    chunks once more and closes the stream."""
    writer = get_writable("out")
    for chunk in chunks:
        await publish(writer, chunk)
    await wait_for_gate(gate_name)
    for chunk in chunks:
        await publish(writer, chunk)
    await close_stream(writer)
    return 2 * len(chunks)


@workflow(name="web.ticker")
async def ticker(count: int, gate_name: str) -> int:
    """Writes ``count`` numbered lines, waits for the gate, writes ``count`` more."""
    writer = get_writable()
    for i in range(count):
        await publish(writer, f"line {i}")
    await wait_for_gate(gate_name)
    for i in range(count, 2 * count):
        await publish(writer, f"line {i}")
    await close_stream(writer)
    return 2 * count


@workflow(name="web.webhook")
async def webhook_wf() -> object:
    """Publishes its webhook URL on stream "url", then returns what is POSTed to it."""
    hook = create_webhook()
    await publish(get_writable("url"), hook.url)
    return await hook


@workflow(name="web.approval")
async def approval(token: str) -> object:
    return await create_hook(token=token)


@workflow(name="web.sleeper")
async def sleeper(seconds: float) -> str:
    await double(1)
    await sleep(seconds)
    return "woke"


@workflow(name="web.showcase")
async def showcase(gate_name: str) -> dict[str, object]:
    """A bit of everything for the UI: parallel steps, a retry, a durable sleep,
    and a live stream that waits for the gate before it ends."""
    writer = get_writable("progress")
    await publish(writer, "starting")
    doubled = await asyncio.gather(double(1), double(2), double(3))
    retried = await flaky(1)
    await sleep(0.3)
    await publish(writer, "slept")
    await wait_for_gate(gate_name)
    await publish(writer, "gate opened")
    await close_stream(writer)
    return {"doubled": list(doubled), "retried": retried}
