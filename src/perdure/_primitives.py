"""The durable primitives a workflow body uses: sleep, hooks, webhooks, streams,
and the deterministic clock and random numbers."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid as _uuid
from collections import deque
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import Any

from ._context import StepContext, WorkflowRuntime, current_runtime, current_step
from ._durations import to_seconds


def _runtime(what: str) -> WorkflowRuntime:
    runtime = current_runtime()
    if runtime is None:
        raise RuntimeError(f"perdure.{what}() can only be used inside a workflow body")
    return runtime


async def sleep(duration: float | dt.timedelta | str) -> None:
    """Durable timer: the run resumes after ``duration`` even across restarts."""
    await _runtime("sleep").sleep(to_seconds(duration))


def now() -> dt.datetime:
    """The workflow's clock: the time of the event being replayed (UTC)."""
    return dt.datetime.fromtimestamp(_runtime("now").now(), tz=dt.UTC)


def random() -> float:
    """A float in [0, 1), the same on every replay (not for secrets)."""
    return _runtime("random").random()


def uuid4() -> _uuid.UUID:
    """A random UUID, the same on every replay (not for secrets)."""
    bits = _runtime("uuid4").randbits(128)
    return _uuid.UUID(int=bits, version=4)


class Hook:
    """An external event the workflow waits for, keyed by ``token``.

    ``await hook`` gives the next payload; ``async for payload in hook`` gives every
    payload in the order they were resumed. The hook stays live until the run ends.
    """

    def __init__(self, token: str, correlation_id: str, loop: asyncio.AbstractEventLoop,
                 url: str | None = None) -> None:
        self.token = token
        self.correlation_id = correlation_id
        self.url = url
        self._loop = loop
        self._payloads: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def _push(self, payload: Any) -> None:
        self._payloads.append(payload)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _next(self) -> Any:
        while not self._payloads:
            self._waiter = self._loop.create_future()
            await self._waiter
        return self._payloads.popleft()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._next().__await__()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await self._next()

    def __repr__(self) -> str:
        return f"<perdure hook {self.token!r}>"


def create_hook(token: str | None = None) -> Hook:
    """A hook resumed by ``engine.resume_hook(token, payload)``. Without a token,
    one of 128 random bits is made (and recorded, so replay reuses it)."""
    if token is not None and (not isinstance(token, str) or not token or len(token) > 512):
        raise ValueError("a hook token is a non-empty string of at most 512 characters")
    return _runtime("create_hook").create_hook(token, False)


def create_webhook() -> Hook:
    """A hook with an unguessable token and a ``.url``: a POST to it (served by
    ``perdure web``) resumes the hook with the request."""
    return _runtime("create_webhook").create_hook(None, True)


@dataclass(frozen=True)
class StreamWriter:
    """Writes chunks to a named stream of a run. Made by ``get_writable``; it may be
    passed from the workflow into steps as an argument (it is a plain dataclass)."""

    run_id: str
    name: str

    def write(self, chunk: Any) -> None:
        """Append one chunk (``bytes`` or any serializable value). A value that cannot
        be serialized raises here and writes nothing. The chunk is queued and
        committed in the background, in order, with whatever else was written
        meanwhile; ``flush``, ``close`` and the step's end wait until it is durable."""
        from . import _stream_writer

        _stream_writer.write(self._step("write"), self.run_id, self.name, chunk)

    def flush(self) -> None:
        """Wait until every chunk this step wrote to the stream is durable."""
        from . import _stream_writer

        _stream_writer.flush(self._step("flush"), self.run_id, self.name)

    def close(self) -> None:
        """Write end-of-stream once the chunks written so far are durable; readers stop
        after them."""
        from . import _stream_writer

        _stream_writer.close(self._step("close"), self.run_id, self.name)

    def _step(self, what: str) -> StepContext:
        ctx = current_step()
        if ctx is None:
            raise RuntimeError(
                f"stream writer .{what}() works inside a step; pass the writer to a step"
            )
        return ctx


DEFAULT_STREAM = "default"


def get_writable(name: str | None = None) -> StreamWriter:
    """The writer of this run's stream ``name`` (default ``"default"``)."""
    stream = name or DEFAULT_STREAM
    if not isinstance(stream, str) or len(stream) > 200:
        raise ValueError("a stream name is a string of at most 200 characters")
    ctx = current_step()
    if ctx is not None:
        return StreamWriter(ctx.run_id, stream)
    return StreamWriter(_runtime("get_writable").run_id, stream)
