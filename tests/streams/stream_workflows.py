"""Workflows the stream tests run: writers in steps, several named streams, a writer
handle passed from the workflow into steps, hooks to hold a run open."""

from __future__ import annotations

import asyncio
import hashlib
import random as _random
from typing import Any

from perdure import (
    RetryableError,
    StreamWriter,
    create_hook,
    current_step,
    get_writable,
    step,
    workflow,
)

MB = 1024 * 1024
BLOB_CHUNK = 64 * 1024
BLOB_CHUNKS = 16


def megabyte() -> bytes:
    """1 MiB, every byte value, not all alike."""
    return bytes(range(256)) * (MB // 256)


def blob_chunks(seed: int) -> list[bytes]:
    """The 16 chunks of 64 KiB stream ``seed`` of ``parallel_blobs`` writes."""
    rng = _random.Random(seed)
    return [rng.randbytes(BLOB_CHUNK) for _ in range(BLOB_CHUNKS)]


def blob_digest(seed: int) -> str:
    return hashlib.sha256(b"".join(blob_chunks(seed))).hexdigest()


def framing_values() -> list[Any]:
    """Chunks whose boundaries and types must come back one for one."""
    return [
        b"",
        b"\x00",
        megabyte(),
        {"n": 1, "text": "héllo", "list": [1, 2.5, None, True]},
        {"nested": {"bytes": b"\x00\xff", "tuple": (1, 2)}, "__t": "not a tag"},
        {},
        "a string",
        "",
        0,
        None,
        [b"in", "a", "list"],
        b"after",
    ]


# -- steps -----------------------------------------------------------------------------
@step
def stream_write_range(start: int, count: int, name: str | None = None,
                       flush_each: bool = False) -> int:
    """Write the integers ``start .. start+count-1`` as chunks (small values);
    ``flush_each``: one commit per chunk, so the writing takes a while."""
    writer = get_writable(name)
    for i in range(start, start + count):
        writer.write(i)
        if flush_each:
            writer.flush()
    return count


@step
def stream_write_values(writer: StreamWriter, values: list[Any]) -> int:
    for value in values:
        writer.write(value)
    return len(values)


@step
def stream_close(writer: StreamWriter) -> None:
    writer.close()


@step
def stream_write_framing() -> int:
    writer = get_writable("framing")
    values = framing_values()
    for value in values:
        writer.write(value)
    writer.write(bytearray(b"bytearray"))
    writer.write(memoryview(b"memoryview"))
    writer.close()
    return len(values) + 2


@step
def stream_write_blob(seed: int) -> str:
    writer = get_writable(f"blob-{seed}")
    for chunk in blob_chunks(seed):
        writer.write(chunk)
    writer.close()
    return blob_digest(seed)


@step(retry_delay=0)
def stream_write_then_retry(n: int) -> int:
    """Writes ``n`` chunks per attempt and fails the first attempt after writing."""
    ctx = current_step()
    assert ctx is not None
    writer = get_writable("retried")
    for i in range(n):
        writer.write({"attempt": ctx.attempt, "i": i})
    if ctx.attempt == 1:
        raise RetryableError("fail after writing", retry_after=0)
    return ctx.attempt


# -- workflows -------------------------------------------------------------------------
@workflow
async def stream_then_hook(first: int, token: str, more: int, flush_each: bool = False) -> int:
    """``first`` chunks, then wait for the hook ``token``, then ``more`` chunks; the
    default stream is left open: the run's end closes it."""
    await stream_write_range(0, first, None, flush_each)
    await create_hook(token=token)
    await stream_write_range(first, more)
    return first + more


@workflow
async def stream_after_hook(token: str, count: int) -> int:
    """Waits for the hook ``token``, then writes ``count`` chunks, one commit each."""
    await create_hook(token=token)
    return await stream_write_range(0, count, None, True)


@workflow
async def stream_count(n: int) -> int:
    """``n`` chunks on the default stream, closed by the end of the run."""
    return await stream_write_range(0, n)


@workflow
async def stream_framing() -> int:
    return await stream_write_framing()


@workflow
async def stream_parallel_blobs(n: int) -> list[str]:
    return list(await asyncio.gather(*(stream_write_blob(i) for i in range(n))))


@workflow
async def stream_named(token: str) -> str:
    """Writers made in the workflow and passed to steps; ``a`` closed explicitly,
    ``b`` and the default stream left open (closed by the run's end); ``never`` has
    no chunk at all. Waits for ``token`` before ending."""
    a = get_writable("a")
    b = get_writable("b")
    await stream_write_values(a, ["a0", "a1"])
    await stream_write_values(b, [b"b0"])
    await stream_write_values(a, [{"a": 2}])
    await stream_close(a)
    await stream_write_range(0, 3)
    await stream_write_values(b, [b"b1"])
    try:
        a.write("from the workflow body")
    except RuntimeError as exc:
        outside = str(exc)
    else:
        outside = "no error"
    await create_hook(token=token)
    return outside


@workflow
async def stream_retried(n: int) -> int:
    return await stream_write_then_retry(n)


# -- the write contract (test_writes.py) -----------------------------------------------
@step
def stream_write_unflushed(name: str, count: int, size: int) -> int:
    """``count`` chunks of ``size`` bytes, neither flushed nor closed: the step's end
    must wait for them."""
    writer = get_writable(name)
    for i in range(count):
        writer.write(bytes([i % 256]) * size)
    return count


@step
def stream_flush_then_count(name: str, count: int) -> int:
    """Chunks stored once ``flush`` returns, read from the step's own World."""
    ctx = current_step()
    assert ctx is not None
    writer = get_writable(name)
    for i in range(count):
        writer.write(i)
    writer.flush()
    return int(ctx.world.stream_info(ctx.run_id, name).chunks)


@step
def stream_misuse(name: str) -> dict[str, str]:
    """What a writer raises: an unserializable value (at once, nothing queued), a
    second ``close`` (nothing: idempotent), a write after ``close`` (at once)."""
    writer = get_writable(name)
    seen: dict[str, str] = {}
    writer.write("kept")
    try:
        writer.write(object())
    except Exception as exc:  # noqa: BLE001 - the test looks at which
        seen["unserializable"] = type(exc).__name__
    writer.close()
    writer.close()
    try:
        writer.write("late")
    except Exception as exc:  # noqa: BLE001
        seen["after_close"] = type(exc).__name__
    return seen


@step(max_retries=0)
def stream_write_late(writer: StreamWriter, value: Any) -> None:
    """Writes to a stream another step closed: the write queues, its flush is refused."""
    writer.write(value)


@workflow
async def stream_unflushed(name: str, count: int, size: int) -> int:
    """The run ends right after the step: its close would come before chunks still in
    flight, were the step's end not to wait for them."""
    return await stream_write_unflushed(name, count, size)


@workflow
async def stream_flushed(name: str, count: int) -> int:
    return await stream_flush_then_count(name, count)


@workflow
async def stream_misused(name: str) -> dict[str, str]:
    return await stream_misuse(name)


@workflow
async def stream_closed_then_written() -> str:
    writer = get_writable("closed")
    await stream_write_values(writer, ["before"])
    await stream_close(writer)
    try:
        await stream_write_late(writer, "after")
    except Exception as exc:  # noqa: BLE001 - the step's failure, as the workflow sees it
        return str(exc)
    return "no error"
