"""``run.stream_async``: the same chunks, order and resume semantics as ``run.stream``,
without blocking the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from perdure import Engine, Run

from . import stream_workflows as w
from ._support import wait_for_hook

MakeReader = Callable[..., Engine]


async def collect(run: Run, name: str | None = None, start_index: int = 0,
                  timeout: float = 20.0) -> list[Any]:
    async def read() -> list[Any]:
        return [item async for item in run.stream_async(name, start_index=start_index)]

    return await asyncio.wait_for(read(), timeout)


def test_async_reader_parity(engine: Engine, make_reader: MakeReader, backend_url: str) -> None:
    token = f"async-{uuid.uuid4()}"
    reader = make_reader(backend_url, poll_interval=0.2)  # woken through the database
    run = engine.start(w.stream_then_hook, 1500, token, 10)
    remote = reader.get_run(run.id)

    async def main() -> None:
        live = asyncio.create_task(collect(run, timeout=60))
        live_remote = asyncio.create_task(collect(remote, timeout=60))
        await asyncio.to_thread(wait_for_hook, engine, token)
        await engine.resume_hook_async(token)
        expected = list(range(1510))
        assert await live == expected
        assert await live_remote == expected
        assert await run.result_async(timeout=20) == 1510

        got = []
        async with contextlib.aclosing(run.stream_async()) as chunks:
            async for item in chunks:
                got.append(item)
                if len(got) == 700:
                    break
        assert got == list(range(700))
        assert await collect(run, start_index=700) == list(range(700, 1510))
        assert await collect(run, start_index=-10) == list(range(1500, 1510))
        assert await collect(run, start_index=1510) == []
        assert await collect(run, "never-written") == []

    asyncio.run(main())
    assert list(run.stream(start_index=1490)) == list(range(1490, 1510))  # the sync twin


def test_async_framing(engine: Engine) -> None:
    run = engine.start(w.stream_framing)

    async def main() -> list[Any]:
        return await collect(run, "framing")

    got = asyncio.run(main())
    assert got == list(run.stream("framing"))
    assert [type(v) for v in got] == [type(v) for v in
                                      [*w.framing_values(), b"bytearray", b"memoryview"]]


@pytest.mark.postgres
def test_async_reader_does_not_block_the_loop_when_listen_cannot_connect(
    pg_engine: Engine, pg_url: str, make_reader: MakeReader
) -> None:
    """The LISTEN connection cannot be made (the pool's can): chunks still arrive by
    the poll, and the event loop keeps running meanwhile."""
    reader = make_reader(pg_url, poll_interval=0.1)
    listener: Any = reader.world.listener  # type: ignore[attr-defined]
    listener.url = "postgresql://postgres@127.0.0.1:1/nowhere"  # connection refused
    run = reader.get_run(pg_engine.start(w.stream_count, 50).id)

    async def main() -> tuple[list[Any], float]:
        longest = 0.0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal longest
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                longest = max(longest, now - last)
                last = now

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        items = await collect(run, timeout=20)
        stop.set()
        await tick
        return items, longest

    items, longest = asyncio.run(main())
    assert items == list(range(50))
    assert not listener.connected.is_set()
    assert longest < 1.0, f"the event loop was blocked for {longest:.2f}s"


