"""Wake-ups over LISTEN/NOTIFY, with a listener that heals itself.

NOTIFY is only a wake-up, never a backlog (field report 000): whatever the
listener misses while its connection is down, readers recover by re-querying the
tables. So the listener's one job is to stay connected:

- one dedicated connection per World (``application_name='perdure-listener'``),
  opened by a thread started with the first subscription;
- two channels: ``perdure_runs`` carries run ends (``run:<id>``), ``perdure`` the
  rest (jobs, streams). Each is LISTENed from the first subscription (or watcher)
  of its keys on: a worker that waits on no run is never sent the end of every run
  of the database, nor a client that executes nothing the wake-ups for jobs;
- the thread waits on that connection's socket (and a wake-up socket, so
  ``close()`` is immediate) and publishes each payload to a ``LocalNotifier``,
  but for a stream wake-up sent by this process's own pooled connections, which
  this process published itself, with the chunks, when the write returned;
- an idle connection is pinged now and then, so a silent network drop is noticed;
- the first subscription of a channel waits (briefly, bounded) until its LISTEN
  is in place, so a reader that subscribes, then queries, then waits cannot miss
  a write made between its query and the LISTEN;
- any error or end of connection: reconnect with exponential backoff (50 ms
  doubling to 2 s, with jitter), LISTEN again, then ``wake_all()``, since
  notifications may have been missed in the gap (likewise after a first connect
  that a subscriber gave up waiting for);
- ``close()`` stops it for good.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from ...world import CommittedChunk
from .._notify import LocalNotifier, LocalSubscription

log = logging.getLogger(__name__)

CHANNEL = "perdure"           # jobs, stream:<run>:<name>
RUN_CHANNEL = "perdure_runs"  # run:<id>: a run ended (migration 0010)
APPLICATION_NAME = "perdure-listener"


def channel_of(key: str) -> str:
    """The channel that carries wake-ups of ``key`` (or of keys with this prefix)."""
    return RUN_CHANNEL if key.startswith("run:") else CHANNEL


class Listener:
    def __init__(
        self,
        url: str,
        notifier: LocalNotifier,
        *,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
        ping_interval: float = 10.0,
        connect_timeout: int = 5,
        own_pids: Callable[[], set[int]] | None = None,
    ) -> None:
        self.url = url
        self._own_pids = own_pids
        self.reconnects = 0          # successful connects after the first one
        self.connected = threading.Event()
        self._listening: dict[str, threading.Event] = {}  # channel -> LISTEN once in place
        self._notifier = notifier
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._ping_interval = ping_interval
        self._connect_timeout = connect_timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._missed = False         # someone may have missed a notification
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)

    # -- control -------------------------------------------------------------------
    def start(self, wait: float = 0.0, channel: str = CHANNEL) -> None:
        """Listen on ``channel`` from now on, starting the thread (once); with
        ``wait``, block until that LISTEN is in place, at most that long."""
        with self._lock:
            listening = self._listening.get(channel)
            new = listening is None
            if listening is None:
                listening = self._listening[channel] = threading.Event()
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="perdure-listener", daemon=True
                )
                self._thread.start()
        if new:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"l")  # a running thread LISTENs on it at once
        # Only the first LISTEN is waited for: in a later gap, the reconnect's
        # wake_all() covers whoever subscribed meanwhile.
        if wait <= 0 or listening.is_set() or self._stop.is_set():
            return
        if not listening.wait(wait):
            self._missed = True  # this subscriber reads without LISTEN in place
            if listening.is_set():  # ... and the LISTEN raced the flag
                self._notifier.wake_all()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def ping(self) -> None:
        """Run a statement on the LISTEN connection now, when connected (the thread's
        own ping does every ``ping_interval``). Its backend reads each NOTIFY in a
        transaction of its own and flushes those counts to ``pg_stat_database``
        only when it next runs a statement. psycopg connections are thread-safe,
        and the listener thread holds this one only while it reads; notifications
        that arrive meanwhile are kept for it."""
        conn = self._conn
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT 1")

    def channels(self) -> set[str]:
        """The channels this listener LISTENs on (or will, once connected)."""
        with self._lock:
            return set(self._listening)

    def backend_pid(self) -> int | None:
        """The server process of the listening connection, when connected."""
        conn = self._conn
        if conn is None or conn.closed:
            return None
        return conn.info.backend_pid

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._wake_r.close()
        self._wake_w.close()

    # -- the thread ----------------------------------------------------------------
    def _run(self) -> None:
        delay = self._min_backoff
        first = True
        while not self._stop.is_set():
            listened: set[str] = set()  # the channels LISTENed on this connection
            try:
                conn = self._connect(listened)
            except Exception as exc:  # noqa: BLE001 - any failure: back off, try again
                log.warning("perdure listener cannot connect: %s", exc)
                self._backoff(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            if not first:
                self.reconnects += 1
                self._missed = True
                log.info("perdure listener reconnected", extra={"reconnects": self.reconnects})
            first = False
            delay = self._min_backoff
            self._conn = conn
            self.connected.set()
            if self._missed:
                self._missed = False
                self._notifier.wake_all()
            try:
                self._pump(conn, listened)
            except Exception as exc:  # noqa: BLE001 - the connection is gone: reconnect
                if not self._stop.is_set():
                    log.warning("perdure listener lost its connection: %s", exc)
            finally:
                self.connected.clear()
                self._conn = None
                conn.close()
            self._backoff(delay)
        log.debug("perdure listener stopped")

    def _connect(self, listened: set[str]) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=self._connect_timeout,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
        try:
            self._listen_all(conn, listened)
        except BaseException:
            conn.close()
            raise
        return conn

    def _listen_all(self, conn: psycopg.Connection[Any], done: set[str]) -> None:
        """LISTEN on every channel asked for and not in ``done`` (updated)."""
        with self._lock:
            wanted = [(c, e) for c, e in self._listening.items() if c not in done]
        for channel, listening in wanted:
            conn.execute(f"LISTEN {channel}")
            done.add(channel)
            listening.set()

    def _pump(self, conn: psycopg.Connection[Any], listened: set[str]) -> None:
        """Deliver notifications until stopped (returns) or the connection fails
        (raises); LISTEN on channels asked for meanwhile (``listened`` is updated)."""
        with selectors.DefaultSelector() as sel:
            sel.register(conn.fileno(), selectors.EVENT_READ, "pg")
            sel.register(self._wake_r, selectors.EVENT_READ, "wake")
            while not self._stop.is_set():
                ready = sel.select(self._ping_interval)
                if self._stop.is_set():
                    return
                if not ready:
                    conn.execute("SELECT 1")  # notifications received meanwhile are kept
                if any(key.data == "wake" for key, _ in ready):
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                    self._listen_all(conn, listened)  # a channel asked for meanwhile
                for note in self._others(list(conn.notifies(timeout=0))):
                    self._notifier.publish(note.payload)
                if conn.closed or conn.broken:
                    raise psycopg.OperationalError("listener connection closed")

    def _others(self, notes: list[psycopg.Notify]) -> list[psycopg.Notify]:
        """The notifications to publish: not a stream wake-up sent by one of this
        process's own connections, which this process published already, with its
        chunks, right after the commit (``Streams.write_chunks``)."""
        if self._own_pids is None or not any(n.payload.startswith("stream:") for n in notes):
            return notes
        own = self._own_pids()
        return [n for n in notes if not (n.pid in own and n.payload.startswith("stream:"))]

    def _backoff(self, delay: float) -> None:
        """Wait ``delay`` give or take 25% (so many processes do not reconnect in
        step), or until stopped."""
        self._stop.wait(delay * random.uniform(0.75, 1.25))


class PgNotifier:
    """The World's ``notifier``: subscriptions from a ``LocalNotifier``, fed by the
    listener (started by the first subscription) and by this process's own writes."""

    def __init__(
        self, local: LocalNotifier, listener: Listener | None, *, first_wait: float = 5.0
    ) -> None:
        self.local = local
        self.listener = listener
        self.first_wait = first_wait

    def subscribe(self, key: str) -> LocalSubscription:
        sub = self.local.subscribe(key)
        if self.listener is not None:
            self.listener.start(wait=self.first_wait, channel=channel_of(key))
        return sub

    def subscribe_local(self, key: str) -> LocalSubscription:
        """No LISTEN: woken only by this process's own publications."""
        return self.local.subscribe(key)

    def publish(self, key: str, chunks: Sequence[CommittedChunk] | None = None) -> None:
        self.local.publish(key, chunks)

    def watch(self, prefix: str, fn: Callable[[str], None]) -> Callable[[], None]:
        unwatch = self.local.watch(prefix, fn)
        if self.listener is not None:  # no wait: a watcher only ever saves work
            self.listener.start(channel=channel_of(prefix))
        return unwatch

    def wake_all(self) -> None:
        self.local.wake_all()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        self.local.wake_all()  # waiting readers notice the World closed at once
