"""Workflows the runtime tests run. A plain module, so `perdure worker` subprocesses
can load it too (`perdure worker tests/runtime/workflows.py`)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import perdure
from perdure import FatalError, RetryableError, create_hook, sleep, step, workflow

CALLS: dict[str, int] = {}
_calls_lock = threading.Lock()


def count(name: str) -> int:
    with _calls_lock:
        CALLS[name] = CALLS.get(name, 0) + 1
        return CALLS[name]


@step
def add(a: int, b: int) -> int:
    return a + b


@workflow
async def addition(a: int, b: int) -> list[int]:
    return [await add(a, b)]


@step
def noop(i: int) -> int:
    return i


@workflow
async def idempotency() -> list[int]:
    first = await asyncio.gather(*(noop(i) for i in range(10)))
    second = await asyncio.gather(*(noop(100 + i) for i in range(100)))
    return list(first) + list(second)


@workflow
async def sequential(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@workflow
async def hooks(token: str) -> list[object]:
    hook = create_hook(token=token)
    received = []
    async for payload in hook:
        received.append(payload)
        if len(received) == 3:
            break
    return received


@step
def always_fatal(tag: str) -> None:
    count(f"fatal:{tag}")
    raise FatalError("no retry for this one")


@workflow
async def catches_fatal(tag: str) -> str:
    try:
        await always_fatal(tag)
    except FatalError as exc:
        return f"caught: {exc}"
    return "not raised"


@step
def retry_once(tag: str) -> dict[str, float]:
    ctx = perdure.current_step()
    assert ctx is not None
    if ctx.attempt == 1:
        raise RetryableError("try again later", retry_after=2)
    return {"attempt": ctx.attempt, "at": time.time()}


@workflow
async def retries(tag: str) -> dict[str, float]:
    started = perdure.now().timestamp()
    result = await retry_once(tag)
    return {**result, "started": started}


@step
def echo(value: object) -> object:
    return value


@workflow
async def echo_wf(value: object) -> object:
    return await echo(value)


@workflow
async def race_step_vs_sleep() -> str:
    step_task = asyncio.create_task(noop(7))
    sleep_task = asyncio.create_task(sleep(3600))
    done, _ = await asyncio.wait({step_task, sleep_task}, return_when=asyncio.FIRST_COMPLETED)
    return "step" if step_task in done else "sleep"


@workflow
async def sleeper(seconds: float) -> str:
    await sleep(seconds)
    return "woke"


@workflow
async def deterministic_helpers() -> list[object]:
    values = [perdure.now().isoformat(), perdure.random(), str(perdure.uuid4())]
    await noop(1)
    values += [perdure.now().isoformat(), perdure.random(), str(perdure.uuid4())]
    return values


@workflow
async def as_completed_wf() -> list[int]:
    out = []
    for fut in asyncio.as_completed([noop(3), noop(1), noop(2)]):
        out.append(await fut)
    return sorted(out)


@step
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


@workflow
async def async_steps(n: int) -> list[int]:
    return list(await asyncio.gather(*(async_double(i) for i in range(n))))


@step
async def slow_async(marker: str) -> str:
    Path(marker).write_text("started")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        Path(marker).write_text("cancelled")
        raise
    return "finished"


@step
def after_slow(marker: str) -> str:
    Path(marker + ".after").write_text("ran")
    return "after"


@workflow
async def cancellable(marker: str) -> str:
    await slow_async(marker)
    await after_slow(marker)
    return "done"


@step
def crashable(marker_dir: str) -> str:
    """Writes one file per attempt; blocks on the first attempt until killed."""
    ctx = perdure.current_step()
    assert ctx is not None
    Path(marker_dir, f"attempt-{ctx.attempt}-{os.getpid()}").write_text("x")
    if ctx.attempt == 1:
        Path(marker_dir, "in-step").write_text(str(os.getpid()))
        time.sleep(600)
    return f"done by {os.getpid()}"


@workflow
async def crash_wf(marker_dir: str) -> str:
    return await crashable(marker_dir)


@workflow
async def chain_then_crash(marker_dir: str) -> str:
    """Two sequential steps: on Postgres the second's job is the chain's lease."""
    await noop(0)
    return await crashable(marker_dir)


@workflow
async def hook_then_step(token: str) -> object:
    payload = await create_hook(token=token)
    return await echo(payload)


@step
def slow_step(marker_dir: str, seconds: float) -> str:
    Path(marker_dir, f"started-{os.getpid()}").write_text("x")
    time.sleep(seconds)
    return f"slept in {os.getpid()}"


@workflow
async def slow_wf(marker_dir: str, seconds: float) -> str:
    return await slow_step(marker_dir, seconds)


# -- short steps run before their start commits (test_short_steps.py) ------------------
@step(retry_delay=0)
def quick_flaky(fail_first: bool) -> int:
    """Returns its attempt number; the first attempt fails when ``fail_first``."""
    ctx = perdure.current_step()
    assert ctx is not None
    if fail_first and ctx.attempt == 1:
        raise RetryableError("the first attempt fails", retry_after=0)
    return ctx.attempt


@workflow
async def one_quick_flaky(fail_first: bool) -> int:
    return await quick_flaky(fail_first)


@step
def paced(seconds: float) -> float:
    """Takes ``seconds`` (its duration is what the test is about)."""
    time.sleep(seconds)
    return seconds


@workflow
async def one_paced(seconds: float) -> float:
    return await paced(seconds)


# -- a step that holds its slot until the test lets it go (test_batching.py) ------------
HOLDS: dict[str, tuple[threading.Event, threading.Event]] = {}


def hold(name: str) -> tuple[threading.Event, threading.Event]:
    """``(entered, release)`` of the ``held`` step called with ``name``."""
    with _calls_lock:
        return HOLDS.setdefault(name, (threading.Event(), threading.Event()))


@step
def held(name: str) -> str:
    entered, release = hold(name)
    entered.set()
    if not release.wait(60):
        raise RuntimeError(f"{name} was never released")
    return name


@workflow
async def held_wf(name: str) -> str:
    return await held(name)


@workflow
async def gather_echo(n: int) -> list[object]:
    """``n`` echo steps at once: wider than a small worker claims at creation."""
    return list(await asyncio.gather(*(echo(i) for i in range(n))))


LOSERS_GO = threading.Event()  # the race's other entrants finish once it is set


@step
def entrant(i: int) -> int:
    if i > 0:
        LOSERS_GO.wait(30)
    return i


@workflow
async def first_of(n: int) -> int:
    """A race whose first entrant wins while the others are still running."""
    tasks = [asyncio.create_task(entrant(i)) for i in range(n)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return done.pop().result()
