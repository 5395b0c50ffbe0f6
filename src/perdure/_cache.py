"""Live workflow instances kept per worker, so a step's completion can advance its
workflow in the same transaction instead of replaying the log.

Each run has a lock: one thread at a time advances a run's instance. An instance is
only kept after a successful commit; one that lost a race is dropped and the next
activation replays from the log.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ._replay import WorkflowInstance


class InstanceCache:
    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, WorkflowInstance] = OrderedDict()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()
        self.hits = 0
        self.misses = 0

    def lock(self, run_id: str) -> _RunLock:
        return _RunLock(self, run_id)

    def get(self, run_id: str) -> WorkflowInstance | None:
        with self._guard:
            inst = self._items.get(run_id)
            if inst is None:
                self.misses += 1
            else:
                self.hits += 1
                self._items.move_to_end(run_id)
            return inst

    def __contains__(self, run_id: object) -> bool:
        with self._guard:
            return run_id in self._items

    def put(self, run_id: str, inst: WorkflowInstance) -> None:
        evicted = []
        with self._guard:
            self._items[run_id] = inst
            self._items.move_to_end(run_id)
            while len(self._items) > self.capacity:
                evicted.append(self._items.popitem(last=False)[1])
        for old in evicted:
            old.dispose()

    def evict(self, run_id: str) -> None:
        with self._guard:
            inst = self._items.pop(run_id, None)
        if inst is not None:
            inst.dispose()

    def clear(self) -> None:
        with self._guard:
            items, self._items = list(self._items.values()), OrderedDict()
        for inst in items:
            inst.dispose()

    def __len__(self) -> int:
        return len(self._items)


class _RunLock:
    """A per-run lock that exists only while someone holds or waits for it."""

    def __init__(self, cache: InstanceCache, run_id: str) -> None:
        self._cache = cache
        self._run_id = run_id

    def __enter__(self) -> None:
        with self._cache._guard:
            lock, users = self._cache._locks.get(self._run_id, (threading.Lock(), 0))
            self._cache._locks[self._run_id] = (lock, users + 1)
        lock.acquire()
        self._lock = lock

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        with self._cache._guard:
            lock, users = self._cache._locks[self._run_id]
            if users <= 1:
                del self._cache._locks[self._run_id]
            else:
                self._cache._locks[self._run_id] = (lock, users - 1)
