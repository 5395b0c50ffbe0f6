"""A run's stream as Server-Sent Events, resumable by chunk index.

Each chunk is one SSE event whose ``id`` is the chunk's index, so a browser
``EventSource`` that loses its connection reconnects with ``Last-Event-ID`` and
the server resumes at the next index: nothing is sent twice or skipped. The
chunk table is the source of truth; a wake-up only says "look again", and a poll
covers a wake-up that never comes (another process writing to SQLite). At the end
of the stream (EOF, or a run that ended without ever opening it) the server sends
``event: end`` and closes; a client must then stop (``EventSource.close()``), or
it would reconnect and be told "end" again.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..world import CHUNK_BYTES, CHUNK_EOF, RUN_TERMINAL, Chunk, World

BATCH = 500
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 1000


def chunk_data(chunk: Chunk) -> str:
    """The event's ``data``: JSON, one line. Bytes as ``{"type": "bytes", "base64": ...}``,
    any other chunk as its stored JSON (tagged types stay tagged)."""
    if chunk.kind == CHUNK_BYTES:
        return json.dumps({"type": "bytes", "base64": base64.b64encode(chunk.data).decode()})
    text = bytes(chunk.data).decode("utf-8")
    if "\n" in text or "\r" in text:  # stored compact, but an SSE data line must be one line
        text = json.dumps(json.loads(text), separators=(",", ":"))
    return text


def format_event(data: str, *, event: str | None = None, event_id: int | None = None) -> str:
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {data}")
    return "\n".join(lines) + "\n\n"


async def resolve_start(world: World, run_id: str, name: str, start_index: int) -> int:
    """A negative ``start_index`` counts back from the chunks written so far."""
    if start_index >= 0:
        return start_index
    info = await run_in_threadpool(world.stream_info, run_id, name)
    return max(0, info.chunks + start_index)


async def stream_events(world: World, run_id: str, name: str, start: int,
                        poll_interval: float) -> AsyncIterator[str]:
    """SSE text for the chunks of ``name`` from index ``start`` on, live, then ``end``."""
    sub = world.notifier.subscribe(f"stream:{run_id}:{name}")
    try:
        yield f"retry: {RETRY_MS}\n\n"
        next_index = start
        run_ended_seen = False
        quiet_since = time.monotonic()
        while True:
            chunks = await run_in_threadpool(world.read_chunks, run_id, name,
                                             start=next_index, limit=BATCH)
            sent = 0
            for chunk in chunks:
                if chunk.index != next_index:
                    continue
                if chunk.kind == CHUNK_EOF:
                    yield _end(next_index)
                    return
                yield format_event(chunk_data(chunk), event_id=chunk.index)
                next_index += 1
                sent += 1
            if len(chunks) >= BATCH:
                continue
            if sent:
                quiet_since = time.monotonic()
                continue
            record = await run_in_threadpool(world.get_run, run_id)
            if record is None or record.status in RUN_TERMINAL:
                if run_ended_seen:  # one more look after the end, then stop
                    yield _end(next_index)
                    return
                run_ended_seen = True
                continue
            await sub.wait_async(poll_interval)
            if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield ": keepalive\n\n"
    finally:
        sub.close()


def _end(next_index: int) -> str:
    payload: dict[str, Any] = {"next_index": next_index}
    return format_event(json.dumps(payload), event="end")
