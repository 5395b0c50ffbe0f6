"""The worker's threads for jobs and steps: one queue, up to ``size`` threads.

Why not ``concurrent.futures.ThreadPoolExecutor``: each task there makes a future
(a ``Condition``, entered when the task starts and again when it ends, with a
``notify_all``) and passes an idle semaphore back and forth, 6 to 8 us of CPU per
task on the project's machine against 1.5 to 2 here (100 empty tasks, a scratch
script). The worker never reads a future, and a ``gather`` of 100 is 100 tasks.

Threads are started as tasks arrive and no idle one is known, up to ``size``, and
then kept. A task's exception is logged: the worker's tasks catch their own, so
one that escapes is a bug to see, not a result to keep.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_Task = tuple[Callable[..., Any], tuple[Any, ...]]


class TaskThreads:
    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._size = size
        self._name = name
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads that finished a task since a submit counted on them
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on one of the threads. After ``shutdown`` the task is
        dropped, as the executor's queued tasks were (its jobs' leases run out)."""
        thread = None
        with self._lock:
            if self._closed:
                return
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self._size:
                thread = threading.Thread(target=self._serve, daemon=True,
                                          name=f"{self._name}_{len(self._threads)}")
                self._threads.append(thread)
        self._tasks.put((fn, args))
        if thread is not None:
            thread.start()

    def shutdown(self) -> None:
        """Drop the tasks not started; each thread ends after its current task."""
        with self._lock:
            self._closed = True
            count = len(self._threads)
        try:
            while True:
                self._tasks.get_nowait()
        except queue.Empty:
            pass
        for _ in range(count):
            self._tasks.put(None)

    def _serve(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None or self._closed:
                return
            fn, args = task
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - keep the thread; the worker's tasks catch their own
                logger.exception("a task of %s failed", self._name)
            with self._lock:
                self._idle += 1
