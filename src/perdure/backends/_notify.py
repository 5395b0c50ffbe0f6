"""In-process wake-ups shared by both backends.

SQLite publishes here directly after each commit; the Postgres listener publishes
here for every NOTIFY it receives. Subscriptions are level-triggered flags, so a
wake-up that lands between a reader's query and its wait is never lost.

A stream's chunks committed by this process travel with their wake-up: a reader
in the writer's process then delivers them without reading them back (one query
per chunk less on a live stream's path). They are held until the reader takes
them, up to ``HELD_BYTES``; past that, and for any wake-up without chunks, the
subscription also says "query the table", as every wake-up did before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence

from ..world import CommittedChunk

log = logging.getLogger(__name__)

HELD_BYTES = 4 * 1024 * 1024  # chunks held for a reader that has not taken them yet


class LocalSubscription:
    def __init__(self, notifier: LocalNotifier, key: str) -> None:
        self.key = key
        self._notifier = notifier
        self._event = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()
        self._held: list[CommittedChunk] = []
        self._held_bytes = 0
        self._blind = False  # a wake-up came without its chunks: query the table

    def set(self, chunks: Sequence[CommittedChunk] | None = None) -> None:
        with self._lock:
            self._hold(chunks)
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_resolve, fut)

    def _hold(self, chunks: Sequence[CommittedChunk] | None) -> None:
        """Under the lock. Past ``HELD_BYTES`` the chunks held are dropped (the reader
        finds a gap and queries)."""
        if chunks is None:
            self._blind = True
            return
        size = sum(len(data) for _, _, data in chunks)
        if self._held_bytes + size > HELD_BYTES:
            self._held, self._held_bytes = [], 0
            self._blind = True
            if size > HELD_BYTES:
                return
        self._held.extend(chunks)
        self._held_bytes += size

    def take(self) -> tuple[list[CommittedChunk], bool]:
        with self._lock:
            held, blind = self._held, self._blind
            self._held, self._held_bytes, self._blind = [], 0, False
        return held, blind

    def wait(self, timeout: float | None) -> bool:
        fired = self._event.wait(timeout)
        self._event.clear()
        return fired

    async def wait_async(self, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._event.is_set():
                self._event.clear()
                return True
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters = [w for w in self._waiters if w[1] is not fut]
        self._event.clear()
        return True

    def close(self) -> None:
        self._notifier._remove(self)

    def __enter__(self) -> LocalSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class LocalNotifier:
    def __init__(self) -> None:
        self._subs: dict[str, set[LocalSubscription]] = defaultdict(set)
        self._watchers: list[tuple[str, Callable[[str], None]]] = []
        self._lock = threading.Lock()

    def subscribe(self, key: str) -> LocalSubscription:
        sub = LocalSubscription(self, key)
        with self._lock:
            self._subs[key].add(sub)
        return sub

    def subscribe_local(self, key: str) -> LocalSubscription:
        return self.subscribe(key)  # every wake-up here is this process's own

    def publish(self, key: str, chunks: Sequence[CommittedChunk] | None = None) -> None:
        """Wake ``key``'s subscriptions. ``chunks``: committed already, in index order."""
        with self._lock:
            subs = list(self._subs.get(key, ()))
            watchers = [fn for prefix, fn in self._watchers if key.startswith(prefix)]
        for sub in subs:
            sub.set(chunks)
        for fn in watchers:
            try:
                fn(key)
            except Exception:  # noqa: BLE001 - a watcher must not stop the wake-ups
                log.exception("a wake-up watcher failed on %r", key)

    def watch(self, prefix: str, fn: Callable[[str], None]) -> Callable[[], None]:
        """Call ``fn(key)`` for every key published that starts with ``prefix`` (on
        the publishing thread: keep it short). Returns the function that stops it."""
        entry = (prefix, fn)
        with self._lock:
            self._watchers.append(entry)

        def unwatch() -> None:
            with self._lock:
                if entry in self._watchers:
                    self._watchers.remove(entry)

        return unwatch

    def wake_all(self) -> None:
        with self._lock:
            subs = [s for group in self._subs.values() for s in group]
        for sub in subs:
            sub.set()

    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._subs.values())

    def _remove(self, sub: LocalSubscription) -> None:
        with self._lock:
            group = self._subs.get(sub.key)
            if group is not None:
                group.discard(sub)
                if not group:
                    del self._subs[sub.key]
