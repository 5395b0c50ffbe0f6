"""Stream chunks: framing on write, resumable readers.

Each chunk is one row with a dense index, so boundaries and types survive: bytes
are stored raw, any other value as tagged JSON. The chunk table is the source of
truth; a wake-up (NOTIFY, or the in-process notifier) only tells a reader to look.
A reader remembers the last index it delivered and on every wake re-queries the
chunks after it, in order, so nothing is delivered twice or skipped; a poll
covers a wake-up that never comes, and a failed query is retried from the same
index (the pool hands out a fresh connection).

One shortcut: chunks committed by the reader's own process come with their
wake-up (``Subscription.take``), and when they follow on from the last index
delivered the reader delivers them without a query. Anything else (a wake-up
from another process, a gap, a poll) queries the table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ._serialization import dumps_value, loads_value
from .world import CHUNK_BYTES, CHUNK_EOF, CHUNK_VALUE, RUN_TERMINAL, Chunk, Subscription, World

logger = logging.getLogger(__name__)

READ_BATCH = 500
MAX_BACKOFF = 2.0


def encode_chunk(chunk: Any, max_bytes: int | None = None) -> tuple[int, bytes]:
    if isinstance(chunk, bytes | bytearray | memoryview):
        return CHUNK_BYTES, bytes(chunk)
    return CHUNK_VALUE, dumps_value(chunk, max_bytes=max_bytes).encode("utf-8")


def decode_chunk(chunk: Chunk) -> Any:
    return _decode(chunk.kind, chunk.data)


def _decode(kind: int, data: bytes) -> Any:
    if kind == CHUNK_BYTES:
        return bytes(data)
    return loads_value(bytes(data).decode("utf-8"), strict=False)


class StreamCursor:
    """The reader's state and its one query; the sync and async readers only wait."""

    def __init__(self, world: World, run_id: str, name: str, start_index: int) -> None:
        self.world = world
        self.run_id = run_id
        self.name = name
        self.start_index = start_index
        self.next_index: int | None = None if start_index < 0 else start_index
        self.done = False
        self._failures = 0
        self._drained_after_end = False

    def fetch(self, check_end: bool = True) -> list[Any]:
        """Chunks after the last one delivered (empty: nothing new). Sets ``done`` at EOF.
        ``check_end``: when nothing is new, also look whether the run ended without
        ever closing this stream (skipped right after a wake-up, which means data)."""
        if self.world.closed:  # engine shutdown: stop, do not retry a closed World
            self.done = True
            return []
        try:
            values = self._fetch(check_end)
        except Exception as exc:  # noqa: BLE001 - a dropped connection: resume from the same index
            if self.world.closed:
                self.done = True
                return []
            self._failures += 1
            logger.warning("stream %s/%s read failed (%s); resuming at index %s",
                           self.run_id, self.name, exc, self.next_index)
            return []
        self._failures = 0
        return values

    def retry_delay(self) -> float:
        return min(MAX_BACKOFF, 0.05 * 2 ** self._failures) if self._failures else 0.0

    def _fetch(self, check_end: bool) -> list[Any]:
        if self.next_index is None:
            info = self.world.stream_info(self.run_id, self.name)
            self.next_index = max(0, info.chunks + self.start_index)
        chunks = self.world.read_chunks(self.run_id, self.name, start=self.next_index,
                                        limit=READ_BATCH)
        values = []
        for chunk in chunks:
            if chunk.index != self.next_index:
                continue  # already delivered
            if chunk.kind == CHUNK_EOF:
                self.done = True
                break
            values.append(decode_chunk(chunk))
            self.next_index += 1
        if not chunks and not self.done and check_end:
            self._check_run_ended()
        return values

    def handed(self, sub: Subscription) -> tuple[list[Any], bool]:
        """After a wake-up: the values of the chunks handed over with it that follow
        on from the last index delivered, and whether the table must be queried
        still (a wake-up without chunks, chunks after a gap, no index yet)."""
        held, blind = sub.take()
        values: list[Any] = []
        for index, kind, data in held:
            if self.next_index is None or index > self.next_index:
                return values, True
            if index < self.next_index:
                continue  # delivered already (by the query that ran meanwhile)
            if kind == CHUNK_EOF:
                self.done = True
                return values, False
            values.append(_decode(kind, data))
            self.next_index += 1
        return values, blind

    def _check_run_ended(self) -> None:
        """A run that ended without ever opening this stream: stop after one more look."""
        run = self.world.get_run(self.run_id)
        if run is None or run.status in RUN_TERMINAL:
            if self._drained_after_end:
                self.done = True
            self._drained_after_end = True


def read_stream(world: World, run_id: str, name: str, start_index: int,
                poll_interval: float) -> Iterator[Any]:
    cursor = StreamCursor(world, run_id, name, start_index)
    sub = world.notifier.subscribe(f"stream:{run_id}:{name}")
    try:
        query, woken = True, False
        while not cursor.done:
            if query:
                values = cursor.fetch(check_end=not woken)
                yield from values
                if len(values) >= READ_BATCH or cursor.done:
                    continue
            delay = cursor.retry_delay()
            if delay:
                time.sleep(delay)
                query, woken = True, False
                continue
            woken = sub.wait(poll_interval)
            query = True
            if woken:
                values, query = cursor.handed(sub)
                yield from values
    finally:
        sub.close()


async def subscribe_async(world: World, key: str) -> Subscription:
    """Subscribe off the event loop (on Postgres the first subscription waits for the
    LISTEN connection), closing the subscription if the caller is cancelled meanwhile."""
    fut = asyncio.get_running_loop().run_in_executor(None, world.notifier.subscribe, key)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        fut.add_done_callback(_close_late_subscription)
        raise


def _close_late_subscription(fut: asyncio.Future[Subscription]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        fut.result().close()


async def read_stream_async(world: World, run_id: str, name: str, start_index: int,
                            poll_interval: float) -> AsyncIterator[Any]:
    cursor = StreamCursor(world, run_id, name, start_index)
    sub = await subscribe_async(world, f"stream:{run_id}:{name}")
    try:
        query, woken = True, False
        while not cursor.done:
            if query:
                values = await asyncio.to_thread(cursor.fetch, not woken)
                for value in values:
                    yield value
                if len(values) >= READ_BATCH or cursor.done:
                    continue
            delay = cursor.retry_delay()
            if delay:
                await asyncio.sleep(delay)
                query, woken = True, False
                continue
            woken = await sub.wait_async(poll_interval)
            query = True
            if woken:
                values, query = cursor.handed(sub)
                for value in values:
                    yield value
    finally:
        sub.close()
