"""Streams: dense indexes from 0, EOF, reads from an index, wake-ups."""

from __future__ import annotations

import asyncio

import pytest

from perdure.errors import EntityConflictError
from perdure.world import CHUNK_BYTES, CHUNK_EOF, CHUNK_VALUE, StreamInfo, World

from ._support import new_run


def test_dense_indexes_and_eof(world: World) -> None:
    run_id = new_run(world)
    assert world.stream_info(run_id, "out") == StreamInfo(run_id, "out", chunks=0, closed=False)
    assert world.write_chunks(run_id, "out", [(CHUNK_BYTES, b"a"), (CHUNK_VALUE, b'"b"')]) == 1
    assert world.write_chunks(run_id, "out", [(CHUNK_BYTES, b"\x00\xff")]) == 2
    assert world.write_chunks(run_id, "out", [(CHUNK_BYTES, b"")]) == 3
    assert world.stream_info(run_id, "out") == StreamInfo(run_id, "out", chunks=4, closed=False)
    world.close_stream(run_id, "out")
    world.close_stream(run_id, "out")  # idempotent
    chunks = world.read_chunks(run_id, "out", start=0)
    assert [(c.index, c.kind, c.data) for c in chunks] == [
        (0, CHUNK_BYTES, b"a"), (1, CHUNK_VALUE, b'"b"'), (2, CHUNK_BYTES, b"\x00\xff"),
        (3, CHUNK_BYTES, b""), (4, CHUNK_EOF, b""),
    ]
    assert all(c.run_id == run_id and c.stream == "out" for c in chunks)
    assert world.stream_info(run_id, "out") == StreamInfo(run_id, "out", chunks=4, closed=True)
    with pytest.raises(EntityConflictError):
        world.write_chunks(run_id, "out", [(CHUNK_BYTES, b"late")])
    assert len(world.read_chunks(run_id, "out", start=0)) == 5


def test_read_from_an_index(world: World) -> None:
    run_id = new_run(world)
    world.write_chunks(run_id, "s", [(CHUNK_BYTES, bytes([i])) for i in range(10)])
    assert [c.index for c in world.read_chunks(run_id, "s", start=7)] == [7, 8, 9]
    assert [c.index for c in world.read_chunks(run_id, "s", start=2, limit=3)] == [2, 3, 4]
    assert world.read_chunks(run_id, "s", start=10) == []
    assert world.read_chunks(run_id, "missing", start=0) == []
    assert world.read_chunks(run_id, "s", start=9)[0].data == bytes([9])


def test_streams_are_separate(world: World) -> None:
    run_id, other = new_run(world), new_run(world)
    world.write_chunks(run_id, "b", [(CHUNK_BYTES, b"1")])
    world.write_chunks(run_id, "a", [(CHUNK_BYTES, b"1"), (CHUNK_BYTES, b"2")])
    world.close_stream(run_id, "a")
    world.close_stream(run_id, "empty")
    assert world.write_chunks(other, "a", [(CHUNK_BYTES, b"x")]) == 0
    assert world.list_streams(run_id) == [
        StreamInfo(run_id, "a", chunks=2, closed=True),
        StreamInfo(run_id, "b", chunks=1, closed=False),
        StreamInfo(run_id, "empty", chunks=0, closed=True),
    ]
    assert world.list_streams(other) == [StreamInfo(other, "a", chunks=1, closed=False)]
    assert world.list_streams(new_run(world)) == []


def test_big_chunks(world: World) -> None:
    run_id = new_run(world)
    big = bytes(range(256)) * 40_000  # 10 MB
    world.write_chunks(run_id, "s", [(CHUNK_BYTES, big)])
    assert world.read_chunks(run_id, "s", start=0)[0].data == big


def test_writes_wake_readers(world: World) -> None:
    run_id = new_run(world)
    sub = world.notifier.subscribe(f"stream:{run_id}:out")
    other = world.notifier.subscribe(f"stream:{run_id}:else")
    try:
        world.write_chunks(run_id, "out", [(CHUNK_BYTES, b"x")])
        assert sub.wait(5)
        world.close_stream(run_id, "out")
        assert sub.wait(5)
        assert not other.wait(0.05)
    finally:
        sub.close()
        other.close()


def test_close_streams_wakes_readers(world: World) -> None:
    run_id = new_run(world)
    world.write_chunks(run_id, "out", [(CHUNK_BYTES, b"x")])
    sub = world.notifier.subscribe(f"stream:{run_id}:out")
    try:
        world.append(run_id, [], close_streams=True)
        assert sub.wait(5)
    finally:
        sub.close()
    assert world.stream_info(run_id, "out").closed


def test_async_wait(world: World) -> None:
    run_id = new_run(world)

    async def main() -> bool:
        sub = world.notifier.subscribe(f"stream:{run_id}:out")
        try:
            waiting = asyncio.ensure_future(sub.wait_async(5))
            await asyncio.sleep(0)
            await asyncio.to_thread(world.write_chunks, run_id, "out", [(CHUNK_BYTES, b"x")])
            return await waiting
        finally:
            sub.close()

    assert asyncio.run(main())
