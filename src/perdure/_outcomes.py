"""Run outcomes this process knows, so ``Run.result`` in the same process gets them
without reading each from the database: those its worker just committed, and those
read along with another run's (``_ends.py``).

The worker announces a terminal event *before* the commit that writes it and
settles it after: the commit's own wake-up (``run:<id>``) can reach a waiter
before the worker has settled, and the waiter then waits those few microseconds
instead of querying. An outcome whose commit failed is dropped, and the waiter
reads the log as it always can: the board only ever saves a read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .world import Event

CAPACITY = 4096
SETTLE_WAIT = 1.0  # seconds a waiter gives a commit that is in flight


class _Entry:
    __slots__ = ("done", "event")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.event: Event | None = None


class Outcomes:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def announce(self, run_id: str) -> None:
        """A commit that ends ``run_id`` is about to be made by this process."""
        with self._lock:
            self._add(run_id, _Entry())

    def put(self, event: Event) -> None:
        """A run's committed terminal event, read from the database."""
        entry = _Entry()
        entry.event = event
        entry.done.set()
        with self._lock:
            if event.run_id not in self._items:
                self._add(event.run_id, entry)

    def _add(self, run_id: str, entry: _Entry) -> None:
        self._items[run_id] = entry
        self._items.move_to_end(run_id)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)[1].done.set()

    def settle(self, run_id: str, event: Event | None) -> None:
        """The commit is made (``event``, the terminal event) or failed (None)."""
        with self._lock:
            entry = self._items.get(run_id)
            if entry is None:
                return
            if event is None:
                del self._items[run_id]
        entry.event = event
        entry.done.set()

    def get(self, run_id: str, wait: bool = True) -> Event | None:
        """The committed terminal event of ``run_id``, if this process wrote it."""
        with self._lock:
            entry = self._items.get(run_id)
        if entry is None:
            return None
        if wait:
            entry.done.wait(SETTLE_WAIT)
        return entry.event
