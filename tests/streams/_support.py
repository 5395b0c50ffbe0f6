"""Helpers for the stream tests: waiting on conditions, reader engines, sabotage."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg

from perdure import Engine, Run
from perdure.backends.postgres._listener import APPLICATION_NAME as LISTENER_APP
from perdure.testing import wait_for as _wait_for

T = TypeVar("T")
KILLER_APP = "stream-test-killer"


def wait_for(fn: Callable[[], T], *, timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``fn`` until it returns something truthy; fail at the deadline."""
    return _wait_for(fn, timeout=timeout, what=what)


def reader_engine(url: str, *, poll_interval: float | None = None,
                  listen: bool = True) -> Engine:
    """An engine that only reads (never launched), with its own World, so its readers
    are woken only through the database (NOTIFY or the poll), never by an in-process
    publish of the writer. ``listen=False``: no LISTEN connection at all."""
    return Engine(url, poll_interval=poll_interval, migrate=False, listen=listen)


def subscriptions(engine: Engine) -> int:
    """Live subscriptions of the engine's notifier (readers, result waiters, worker)."""
    notifier: Any = engine.world.notifier
    local = getattr(notifier, "local", notifier)  # PgNotifier wraps a LocalNotifier
    return int(local.subscriber_count())


def wait_for_hook(engine: Engine, token: str, timeout: float = 30.0) -> None:
    wait_for(lambda: engine.world.get_hook_by_token(token) is not None, timeout=timeout,
             what=f"hook {token}")


class Collector:
    """Reads a stream on a thread, recording every chunk as it arrives."""

    def __init__(self, run: Run, name: str | None = None, start_index: int = 0) -> None:
        self.items: list[Any] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._iter: Iterator[Any] = run.stream(name, start_index=start_index)
        self.thread = threading.Thread(target=self._read, name="stream-test-reader",
                                       daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for item in self._iter:
                self.items.append(item)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.done.set()

    def wait_count(self, n: int, timeout: float = 20.0) -> None:
        wait_for(lambda: len(self.items) >= n or self.done.is_set(), timeout=timeout,
                 what=f"{n} chunks (have {len(self.items)})")
        assert self.error is None, self.error

    def wait_done(self, timeout: float = 20.0) -> list[Any]:
        assert self.done.wait(timeout), f"no EOF after {timeout}s ({len(self.items)} chunks)"
        self.thread.join(5)
        assert self.error is None, self.error
        return self.items


class Killer:
    """A thread that runs ``pg_terminate_backend`` on every matching session of the
    test database every ``interval`` seconds until stopped; counts the kills."""

    def __init__(self, url: str, *, listeners: bool, interval: float = 0.05) -> None:
        self.url = url
        self.listeners = listeners
        self.interval = interval
        self.kills = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-test-killer",
                                        daemon=True)
        self._own: psycopg.Connection[Any] | None = None

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self._own is not None:
            self._own.close()

    def kill_now(self) -> int:
        """One round of kills on the calling thread (on a connection of its own)."""
        if self._own is None:
            self._own = psycopg.connect(self.url, autocommit=True, application_name=KILLER_APP)
        killed = self.kill_once(self._own)
        self.kills += killed
        return killed

    def kill_once(self, conn: psycopg.Connection[Any]) -> int:
        op = "=" if self.listeners else "<>"
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            f" AND backend_type = 'client backend' AND application_name {op} %s"
            " AND application_name <> %s",
            (LISTENER_APP, KILLER_APP),
        ).fetchall()
        return sum(1 for (ok,) in rows if ok)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name=KILLER_APP) as conn:
            while not self._stop.is_set():
                killed = self.kill_once(conn)
                self.kills += killed
                self.rounds += 1
                self._stop.wait(self.interval)


def sessions(url: str, application_name: str | None = None) -> list[int]:
    """Server pids of the client sessions on the database (except this check's own)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " AND (%s::text IS NULL OR application_name = %s::text)",
            (application_name, application_name),
        ).fetchall()
    return sorted(row[0] for row in rows)
