"""A deterministic asyncio event loop for workflow bodies.

It is never "run": the replay driver calls :meth:`WorkflowLoop.drive` after each
input (the start, then one result at a time), and the loop runs ready callbacks in
FIFO order until nothing is ready. There is no I/O and no wall clock: ``time()``
is the timestamp of the event being applied, and a timer (``call_later``, hence
``asyncio.sleep`` and ``asyncio.wait_for``) becomes a durable timer command.
So ``gather``, ``wait``, ``create_task`` and ``as_completed`` all work, and the
order in which callbacks run is a function of the log alone.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class TimerHost(Protocol):
    """The driver side: turns a loop timer into a durable wait and back."""

    perdure_now: float

    def start_timer(self, handle: asyncio.TimerHandle) -> None: ...

    def cancel_timer(self, handle: asyncio.TimerHandle) -> None: ...


class WorkflowLoop(asyncio.AbstractEventLoop):
    def __init__(self, host: TimerHost, runtime: Any) -> None:
        self._host = host
        self.perdure_runtime = runtime
        self._ready: deque[asyncio.Handle] = deque()
        self._closed = False
        self._driving = False
        self._tasks: list[asyncio.Task[Any]] = []

    # -- driving ---------------------------------------------------------------
    def drive(self) -> None:
        """Run every ready callback, including those they schedule, until none is left."""
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        self._driving = True
        try:
            while self._ready:
                handle = self._ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:
            self._driving = False
            asyncio.events._set_running_loop(previous)

    def dispose(self) -> None:
        """Forget unfinished tasks quietly (a finished run may leave a lost race pending)."""
        for task in self._tasks:
            task._log_destroy_pending = False  # type: ignore[attr-defined]
        self._tasks.clear()
        self._ready.clear()
        self._closed = True

    # -- scheduling ------------------------------------------------------------
    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., Any], *args: Any,
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(  # type: ignore[override]
        self, callback: Callable[..., Any], *args: Any,
                             context: contextvars.Context | None = None) -> asyncio.Handle:
        raise RuntimeError("a workflow body cannot be reached from other threads")

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Callable[..., Any], *args: Any,
                   context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., Any], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, args, self, context)
        if when <= self.time():
            self._ready.append(handle)
        else:
            self._host.start_timer(handle)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        self._host.cancel_timer(handle)

    def fire_timer(self, handle: asyncio.TimerHandle) -> None:
        if not handle._cancelled:
            self._ready.append(handle)

    def time(self) -> float:
        return self._host.perdure_now

    # -- futures and tasks -----------------------------------------------------
    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(self, coro: Any, *, name: str | None = None,
                    context: contextvars.Context | None = None) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=self, name=name, context=context)
        self._tasks.append(task)
        return task

    # -- the rest of the loop interface --------------------------------------
    def is_running(self) -> bool:
        return self._driving

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self.dispose()

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    def get_exception_handler(self) -> None:
        return None

    def set_exception_handler(self, handler: Any) -> None:
        raise RuntimeError("workflow loops do not take exception handlers")

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        logger.debug("workflow loop: %s", context.get("message"), extra={"context": context})

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.default_exception_handler(context)

    def get_task_factory(self) -> None:
        return None

    def _unsupported(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "this asyncio operation does I/O or uses threads and cannot run in a workflow "
            "body; put it in a @step"
        )

    run_forever = run_until_complete = stop = _unsupported
    run_in_executor = getaddrinfo = getnameinfo = create_connection = _unsupported  # type: ignore[assignment]
    create_server = create_datagram_endpoint = subprocess_exec = subprocess_shell = _unsupported
    add_reader = add_writer = remove_reader = remove_writer = add_signal_handler = _unsupported  # type: ignore[assignment]
    sock_recv = sock_sendall = sock_connect = sock_accept = _unsupported
    shutdown_asyncgens = shutdown_default_executor = _unsupported
