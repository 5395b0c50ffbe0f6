"""Running one attempt of a step and turning what happened into an event.

A step runs on a worker thread: a sync step directly, an async step on that
thread's own event loop (so no thread hop on the hot path). The outcome is one of
``step_completed``, ``step_retrying`` (with its due time) or ``step_failed``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import _stream_writer
from ._context import StepContext, reset_step_context, set_step_context
from ._decorators import StepFunction
from ._failures import describe
from ._serialization import encode
from .errors import FatalError, RetryableError, SerializationError
from .world import NewEvent, World


@dataclass
class StepOutcome:
    event: NewEvent
    retry_at: float | None = None  # set for step_retrying

    @property
    def final(self) -> bool:
        return self.retry_at is None


class _ThreadLoops(threading.local):
    loop: asyncio.AbstractEventLoop | None = None


_loops = _ThreadLoops()


def thread_loop() -> asyncio.AbstractEventLoop:
    """This worker thread's own event loop for async steps."""
    if _loops.loop is None or _loops.loop.is_closed():
        _loops.loop = asyncio.new_event_loop()
    return _loops.loop


class RunningSteps:
    """Async steps in flight, so a cancelled run can cancel them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_run: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]]] = {}

    def add(self, run_id: str, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._by_run.setdefault(run_id, set()).add((loop, task))

    def remove(self, run_id: str, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        with self._lock:
            group = self._by_run.get(run_id)
            if group is not None:
                group.discard((loop, task))
                if not group:
                    del self._by_run[run_id]

    def run_ids(self) -> list[str]:
        with self._lock:
            return list(self._by_run)

    def cancel_run(self, run_id: str) -> int:
        with self._lock:
            group = list(self._by_run.get(run_id, ()))
        for loop, task in group:
            loop.call_soon_threadsafe(task.cancel)
        return len(group)


def run_attempt(step: StepFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
                run_id: str, correlation_id: str, attempt: int, world: World,
                running: RunningSteps, max_payload_bytes: int | None) -> StepOutcome:
    ctx = StepContext(run_id, correlation_id, step.name, attempt, world, max_payload_bytes)
    token = set_step_context(ctx)
    try:
        if step.is_async:
            value = _run_async(step, args, kwargs, run_id, running)
        else:
            value = step.fn(*args, **kwargs)
        _stream_writer.finish(ctx)  # the step's chunks are durable before its outcome
        output = encode(value, max_bytes=max_payload_bytes)
    except asyncio.CancelledError:
        _stream_writer.finish(ctx, quietly=True)
        return StepOutcome(NewEvent("step_failed", correlation_id, {
            "attempt": attempt, "error": {"type": "CancelledError", "message": "step cancelled",
                                          "traceback": ""}}, time.time()))
    except Exception as exc:  # noqa: BLE001 - user code: every error becomes an outcome
        _stream_writer.finish(ctx, quietly=True)
        return _failure(step, exc, correlation_id, attempt)
    finally:
        reset_step_context(token)
    data = {"attempt": attempt, "output": output}
    return StepOutcome(NewEvent("step_completed", correlation_id, data, time.time()))


def _run_async(step: StepFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               run_id: str, running: RunningSteps) -> Any:
    loop = thread_loop()
    task = loop.create_task(step.fn(*args, **kwargs))
    running.add(run_id, loop, task)
    try:
        return loop.run_until_complete(task)
    finally:
        running.remove(run_id, loop, task)


def _failure(step: StepFunction[Any, Any], exc: Exception, cid: str, attempt: int) -> StepOutcome:
    now = time.time()
    error = describe(exc)
    fatal = isinstance(exc, FatalError | SerializationError)
    if fatal or attempt > step.options.max_retries:
        return StepOutcome(NewEvent("step_failed", cid, {"attempt": attempt, "error": error}, now))
    delay = step.options.delay_before(attempt + 1)
    if isinstance(exc, RetryableError) and exc.retry_after is not None:
        delay = max(0.0, float(exc.retry_after))
    retry_at = now + delay
    data = {"attempt": attempt, "error": error, "retry_after": retry_at}
    return StepOutcome(NewEvent("step_retrying", cid, data, now), retry_at)
