"""Readers leave nothing behind: no thread, no task, no subscription, no connection,
whether they end by EOF, by a break out of the loop, by a cancelled task or by a
generator dropped unclosed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from perdure import Engine, Run
from perdure.backends.postgres import PostgresWorld

from . import stream_workflows as w
from ._support import subscriptions, wait_for, wait_for_hook

MakeReader = Callable[..., Engine]


def threads(ignore: tuple[str, ...] = ()) -> set[int | None]:
    """Live threads, except the worker's step pool (it grows on demand) and those
    whose name starts with one of ``ignore``."""
    skip = ("perdure-step", *ignore)
    return {t.ident for t in threading.enumerate()
            if t.is_alive() and not t.name.startswith(skip)}


def pg_sessions(url: str) -> list[tuple[str, str]]:
    """(application_name, state) of every client session on the test database."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, coalesce(state, '') FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' ORDER BY 1, 2"
        ).fetchall()
    return [(str(a), str(s)) for a, s in rows]


def busy_pool_connections(engine: Engine) -> int:
    """Connections the engine has lent out and not had back."""
    if not isinstance(engine.world, PostgresWorld):
        return 0
    return engine.world._db.lent()


@dataclass
class Baseline:
    threads: set[int | None]
    subscriptions: int
    sessions: int | None

    @classmethod
    def take(cls, reader: Engine, url: str) -> Baseline:
        pg = url.startswith("postgres")
        return cls(threads(), subscriptions(reader), len(pg_sessions(url)) if pg else None)

    def assert_restored(self, reader: Engine, url: str, *,
                        ignore_threads: tuple[str, ...] = ()) -> None:
        wait_for(lambda: subscriptions(reader) == self.subscriptions, timeout=10,
                 what=f"subscriptions back to {self.subscriptions} (now {subscriptions(reader)})")
        wait_for(lambda: threads(ignore_threads) <= self.threads, timeout=10,
                 what=f"no new thread (new: {threads(ignore_threads) - self.threads})")
        wait_for(lambda: busy_pool_connections(reader) == 0, timeout=10,
                 what="every pooled connection of the reader given back")
        if self.sessions is not None:
            wait_for(lambda: len(pg_sessions(url)) <= self.sessions, timeout=10,
                     what=f"no more than {self.sessions} sessions: {pg_sessions(url)}")


def parked_run(engine: Engine, backend_url: str,
               make_reader: MakeReader) -> tuple[Engine, Run, str, Baseline]:
    """A reader engine, and a run that wrote 1,200 chunks and waits on a hook (the
    writer is idle), read once from the tail to warm up the reader's listener and
    pool; then the reader's baseline."""
    reader = make_reader(backend_url, poll_interval=0.2)
    token = f"cleanup-{uuid.uuid4()}"
    run = reader.get_run(engine.start(w.stream_then_hook, 1200, token, 5).id)
    wait_for_hook(engine, token)
    assert next(iter(run.stream(start_index=-1))) == 1199
    return reader, run, token, Baseline.take(reader, backend_url)


def test_sync_reader_break_leaves_nothing(
    engine: Engine, backend_url: str, make_reader: MakeReader
) -> None:
    reader, run, token, base = parked_run(engine, backend_url, make_reader)

    got = []
    for item in run.stream():  # break mid-stream
        got.append(item)
        if len(got) == 600:
            break
    assert got == list(range(600))
    dropped = run.stream()
    assert next(dropped) == 0
    del dropped  # never closed explicitly
    base.assert_restored(reader, backend_url)

    # break out of a reader that was waiting for a live chunk
    live: list[Any] = []

    def read_one() -> None:
        for item in run.stream(start_index=1200):
            live.append(item)
            break

    thread = threading.Thread(target=read_one, name="stream-test-live")
    thread.start()
    wait_for(lambda: subscriptions(reader) > base.subscriptions, what="the live reader waiting")
    engine.resume_hook(token)
    thread.join(15)
    assert not thread.is_alive() and live == [1200]
    assert run.result(timeout=15) == 1205
    base.assert_restored(reader, backend_url)


def test_async_reader_break_and_cancel_leave_nothing(
    engine: Engine, backend_url: str, make_reader: MakeReader
) -> None:
    reader, run, token, base = parked_run(engine, backend_url, make_reader)

    async def main() -> None:
        me = asyncio.current_task()

        async def no_other_task() -> None:
            while asyncio.all_tasks() - {me, asyncio.current_task()}:
                await asyncio.sleep(0.01)

        async def settled() -> None:
            await asyncio.wait_for(no_other_task(), 10)
            # the loop's default executor (asyncio.to_thread) lives as long as the
            # loop: its threads are counted once asyncio.run() has returned
            await asyncio.to_thread(base.assert_restored, reader, backend_url,
                                    ignore_threads=("asyncio_",))

        got = []
        async with contextlib.aclosing(run.stream_async()) as chunks:  # closed at once
            async for item in chunks:
                got.append(item)
                if len(got) == 600:
                    break
        assert got == list(range(600))
        await settled()

        got = []
        async for item in run.stream_async(start_index=600):  # closed by the loop's hook
            got.append(item)
            if len(got) == 300:
                break
        assert got == list(range(600, 900))
        await settled()

        async def consume() -> None:
            async for _ in run.stream_async(start_index=1200):
                raise AssertionError("no chunk was written")

        task = asyncio.create_task(consume())  # cancelled while waiting for a live chunk
        await asyncio.wait_for(_until(lambda: subscriptions(reader) > base.subscriptions), 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await settled()

        # a live chunk, then a break
        live = []

        async def read_one() -> None:
            async for item in run.stream_async(start_index=1200):
                live.append(item)
                break

        task = asyncio.create_task(read_one())
        await asyncio.wait_for(_until(lambda: subscriptions(reader) > base.subscriptions), 10)
        await engine.resume_hook_async(token)
        await asyncio.wait_for(task, 15)
        assert live == [1200]
        assert await run.result_async(timeout=15) == 1205
        await settled()

    asyncio.run(main())
    base.assert_restored(reader, backend_url)  # asyncio.run closed its executor threads


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)
