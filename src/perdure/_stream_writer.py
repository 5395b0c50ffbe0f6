"""Stream writes: a step's chunks committed in the background, several per transaction.

Why: one commit per ``write`` caps a stream at one chunk per commit (1 MiB in
64 KiB chunks took 16 commits, about 60 MB/s on a 2-core machine against 150 MB/s
for the same rows in one transaction). So ``write`` checks and encodes the chunk
(a bad value raises at the call site and queues nothing), queues it and returns.
One flush at a time per writer commits everything queued since the previous flush
began: a fast writer's chunks go in a few transactions, a slow writer's each go
at once, so a live reader sees a chunk one commit after its ``write``.

What stays true: chunks keep their write order (one flush in flight per writer);
``close`` and ``flush`` return once the chunks are durable; a step's outcome is
recorded only after its chunks are (``run_attempt`` calls :func:`finish`), so a
completed step never has chunks still in flight. A failed flush fails the step:
the error is raised by the next ``write``, ``flush`` or ``close``, or at the step's
end. A writer whose unwritten chunks exceed ``BUFFER_BYTES`` waits for the flush.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._context import StepContext
from ._streams import encode_chunk
from .errors import EntityConflictError
from .world import CHUNK_EOF, World

logger = logging.getLogger(__name__)

FLUSH_CHUNKS = 1000               # chunks per transaction at most
FLUSH_BYTES = 8 * 1024 * 1024     # bytes per transaction at most (a bigger chunk goes alone)
BUFFER_BYTES = 16 * 1024 * 1024   # a writer waits while more than this is not yet durable
FLUSH_THREADS = 16

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _flusher() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(FLUSH_THREADS, thread_name_prefix="perdure-stream")
        return _executor


def _forget_after_fork() -> None:
    """A forked child inherits the parent's executor but none of its threads (its
    flushes would wait forever), and maybe a held lock: it starts afresh."""
    global _executor, _executor_lock
    _executor = None
    _executor_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


class ChunkWriter:
    """One step attempt's writes to one stream: a queue and at most one flush in flight."""

    def __init__(self, world: World, run_id: str, name: str) -> None:
        self._world = world
        self._run_id = run_id
        self._name = name
        self._cond = threading.Condition()
        self._queued: list[tuple[int, bytes]] = []
        self._unwritten = 0  # bytes queued or in flight
        self._flushing = False
        self._error: BaseException | None = None
        self._closed = False

    def write(self, kind: int, data: bytes) -> None:
        with self._cond:
            self._check()
            while self._unwritten > BUFFER_BYTES and self._error is None:
                self._cond.wait()
            self._check()
            self._queue(kind, data)

    def _queue(self, kind: int, data: bytes) -> None:
        """Under the lock: queue a chunk and start a flush unless one is in flight
        (which takes the chunk next)."""
        self._queued.append((kind, data))
        self._unwritten += len(data)
        if self._flushing:
            return
        self._flushing = True
        try:
            _flusher().submit(self._drain)
        except RuntimeError:  # the interpreter is shutting down: no more threads
            threading.Thread(target=self._drain, daemon=True).start()

    def flush(self) -> None:
        """Wait until every chunk queued so far is durable; raise a failed flush's error."""
        with self._cond:
            while self._flushing:
                self._cond.wait()
            if self._error is not None:
                raise self._error

    def close(self) -> None:
        """End the stream once its chunks are durable. With chunks still queued or in
        flight, the EOF goes in the same transaction as the last of them; with none,
        ``World.close_stream`` writes it (idempotent, as ``close`` always is)."""
        with self._cond:
            if self._error is not None:
                raise self._error
            pending = self._flushing and not self._closed
            self._closed = True
            if pending:
                self._queue(CHUNK_EOF, b"")
        if pending:
            self.flush()
        else:
            self._world.close_stream(self._run_id, self._name)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise EntityConflictError(f"stream {self._name!r} of run {self._run_id} is closed")

    def _drain(self) -> None:
        while True:
            with self._cond:
                batch = self._take()
                if not batch:
                    self._flushing = False
                    self._cond.notify_all()
                    return
            try:
                self._world.write_chunks(self._run_id, self._name, batch)
            except BaseException as exc:  # noqa: BLE001 - the step raises it
                with self._cond:
                    self._error = exc
                    self._queued.clear()
                    self._unwritten = 0
                    self._flushing = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._unwritten -= sum(len(data) for _, data in batch)
                self._cond.notify_all()

    def _take(self) -> list[tuple[int, bytes]]:
        size = 0
        count = 0
        for _, data in self._queued:
            if count and (count >= FLUSH_CHUNKS or size + len(data) > FLUSH_BYTES):
                break
            size += len(data)
            count += 1
        batch = self._queued[:count]
        del self._queued[:count]
        return batch


def _writer(ctx: StepContext, run_id: str, name: str) -> ChunkWriter:
    key = (run_id, name)
    writer = ctx.writers.get(key)
    if writer is None:
        writer = ctx.writers.setdefault(key, ChunkWriter(ctx.world, run_id, name))
    return writer  # type: ignore[no-any-return]


def write(ctx: StepContext, run_id: str, name: str, chunk: Any) -> None:
    kind, data = encode_chunk(chunk, ctx.max_payload_bytes)
    _writer(ctx, run_id, name).write(kind, data)


def flush(ctx: StepContext, run_id: str, name: str) -> None:
    writer = ctx.writers.get((run_id, name))
    if writer is not None:
        writer.flush()


def close(ctx: StepContext, run_id: str, name: str) -> None:
    _writer(ctx, run_id, name).close()


def finish(ctx: StepContext, *, quietly: bool = False) -> None:
    """The step's end: wait for all its chunks. ``quietly`` (a step that failed
    anyway): log a failed flush instead of raising it."""
    for writer in list(ctx.writers.values()):
        try:
            writer.flush()
        except Exception:
            if not quietly:
                raise
            logger.warning("stream chunks of failed step %s/%s not written",
                           ctx.run_id, ctx.correlation_id, exc_info=True)
