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
def stream_write_range(start: int, count: int, name: str | None = None) -> int:
    """Write the integers ``start .. start+count-1`` as chunks (small values)."""
    writer = get_writable(name)
    for i in range(start, start + count):
        writer.write(i)
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
async def stream_then_hook(first: int, token: str, more: int) -> int:
    """``first`` chunks, then wait for the hook ``token``, then ``more`` chunks; the
    default stream is left open: the run's end closes it."""
    await stream_write_range(0, first)
    await create_hook(token=token)
    await stream_write_range(first, more)
    return first + more


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
