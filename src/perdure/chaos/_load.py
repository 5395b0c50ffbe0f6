"""The load driver: starts runs, resumes their hooks from outside, reads their streams.

``inflight`` driver threads each take the next run number and see that run through:

1. start it, with an idempotency key, so a start whose answer was lost to a
   dropped connection is simply repeated. Three ways in turn: ``engine.start``,
   ``engine.start(connection=...)`` in a transaction of the driver's own
   connection, and the SQL function ``perdure.start_workflow``;
2. open a live reader on the run's stream at once (before the stream exists), on
   its own thread, collecting every chunk it is given;
3. wait for the run's hook and resume it, from outside, once: by
   ``engine.resume_hook`` or by the SQL ``perdure.resume_hook`` in turn. After an
   error that leaves it unknown whether the resume committed, the log is read
   before trying again, so a payload is never delivered twice by the driver;
4. wait for the run's result.

Client calls that fail on a dropped connection are retried (that is the
client's job); each such retry is counted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from .._engine import Engine
from .._run import Run
from ..errors import HookNotFoundError, RunCancelledError, RunFailedError, RunNotFoundError
from . import workload

logger = logging.getLogger(__name__)

CLIENT_NAME = "perdure-chaos-client"
START_WAYS = ("engine", "transaction", "sql")
RESUME_WAYS = ("engine", "sql")


@dataclass
class Tracked:
    """What the driver saw of one run."""

    index: int
    key: str
    start_way: str
    resume_way: str
    run_id: str | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    status: str | None = None
    result: Any = None
    error: str | None = None
    chunks: list[Any] = field(default_factory=list)
    reader_done: bool = False
    reader_errors: list[str] = field(default_factory=list)
    resumes: int = 0                 # resume calls that reported success
    client_retries: int = 0

    @property
    def latency(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


class Stopped(Exception):
    """The driver was told to stop."""


class LoadDriver:
    def __init__(self, engine: Engine, url: str, *, seed: int, runs: int, duration: float,
                 inflight: int, run_timeout: float) -> None:
        self.engine = engine
        self.url = url
        self.seed = seed
        self.runs = runs
        self.duration = duration
        self.inflight = inflight
        self.run_timeout = run_timeout
        self.tracked: list[Tracked] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._began = 0.0
        self._readers: list[threading.Thread] = []
        self.load_seconds = 0.0

    # -- the whole load --------------------------------------------------------------
    def run(self) -> None:
        """Drive runs until at least ``runs`` were started and ``duration`` passed,
        and every started run has ended (or timed out)."""
        self._began = time.monotonic()
        threads = [threading.Thread(target=self._driver, name=f"chaos-driver-{i}", daemon=True)
                   for i in range(self.inflight)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.load_seconds = time.monotonic() - self._began

    def stop(self) -> None:
        self._stop.set()

    def join_readers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for reader in list(self._readers):
            reader.join(max(0.0, deadline - time.monotonic()))

    def started(self) -> int:
        with self._lock:
            return len(self.tracked)

    def _take(self) -> Tracked | None:
        with self._lock:
            index = len(self.tracked)
            elapsed = time.monotonic() - self._began
            if self._stop.is_set() or (index >= self.runs and elapsed >= self.duration):
                return None
            t = Tracked(index, f"{self.seed}-{index:05d}", START_WAYS[index % len(START_WAYS)],
                        RESUME_WAYS[(index // len(START_WAYS)) % len(RESUME_WAYS)])
            self.tracked.append(t)
            return t

    def _driver(self) -> None:
        conn: list[psycopg.Connection[Any] | None] = [None]
        try:
            while (t := self._take()) is not None:
                try:
                    self._drive(t, conn)
                except Stopped:
                    t.error = t.error or "driver stopped before the run ended"
                except Exception as exc:  # noqa: BLE001 - recorded; the checker reports it
                    logger.exception("driving run %s failed", t.key)
                    t.error = f"driver: {exc!r}"
        finally:
            if conn[0] is not None:
                with contextlib.suppress(Exception):
                    conn[0].close()

    # -- one run -----------------------------------------------------------------------
    def _drive(self, t: Tracked, conn: list[psycopg.Connection[Any] | None]) -> None:
        t.started_at = time.monotonic()
        deadline = t.started_at + self.run_timeout
        run = self._start(t, conn, deadline)
        t.run_id = run.id
        reader = threading.Thread(target=self._read, args=(t, run), daemon=True,
                                  name=f"chaos-reader-{t.index}")
        reader.start()
        with self._lock:
            self._readers.append(reader)
        self._resume(t, run, conn, deadline)
        self._wait(t, run, deadline)
        t.ended_at = time.monotonic()
        reader.join(max(1.0, deadline - time.monotonic()))

    def _client(self, conn: list[psycopg.Connection[Any] | None]) -> psycopg.Connection[Any]:
        c = conn[0]
        if c is None or c.closed or c.broken:
            c = conn[0] = psycopg.connect(self.url, application_name=CLIENT_NAME,
                                          connect_timeout=5)
        return c

    def _retry_pause(self, t: Tracked, conn: list[psycopg.Connection[Any] | None],
                     deadline: float, what: str, exc: BaseException) -> None:
        t.client_retries += 1
        logger.debug("run %s: %s failed (%s); retrying", t.key, what, exc)
        c = conn[0]
        if c is not None:
            with contextlib.suppress(Exception):
                c.close()
            conn[0] = None
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: still failing at the deadline: {exc!r}")
        if self._stop.wait(0.2):
            raise Stopped

    def _start(self, t: Tracked, conn: list[psycopg.Connection[Any] | None],
               deadline: float) -> Run:
        key = f"chaos:{t.key}"
        while True:
            try:
                if t.start_way == "engine":
                    return self.engine.start(workload.WORKFLOW, t.key, idempotency_key=key)
                c = self._client(conn)
                if t.start_way == "transaction":
                    with c.transaction():
                        run = self.engine.start(workload.WORKFLOW, t.key, idempotency_key=key,
                                                connection=c)
                    return Run(self.engine, run.id)
                with c.transaction():
                    row = c.execute("SELECT perdure.start_workflow(%s, %s, %s)",
                                    (workload.WORKFLOW, Jsonb([t.key]), key)).fetchone()
                assert row is not None
                return Run(self.engine, str(row[0]))
            except psycopg.OperationalError as exc:
                self._retry_pause(t, conn, deadline, "start", exc)

    def _read(self, t: Tracked, run: Run) -> None:
        """A live reader; if the iterator itself ever raises, that is recorded (the
        reader is meant to survive everything) and reading resumes where it stopped."""
        while True:
            try:
                for value in run.stream(workload.STREAM, start_index=len(t.chunks)):
                    t.chunks.append(value)
                t.reader_done = True
                return
            except Exception as exc:  # noqa: BLE001 - a finding, then carry on
                t.reader_errors.append(repr(exc))
                if self._stop.wait(0.5) or len(t.reader_errors) > 50:
                    return

    def _delivered(self, run_id: str) -> bool:
        return bool(self.engine.world.list_events(run_id, types=["hook_received"]))

    def _resume(self, t: Tracked, run: Run, conn: list[psycopg.Connection[Any] | None],
                deadline: float) -> None:
        token, payload = workload.hook_token(t.key), workload.hook_payload(t.key)
        unsure = False   # an earlier attempt may have committed
        while True:
            try:
                if unsure and self._delivered(run.id):
                    t.resumes += 1
                    return
                hook = self.engine.world.get_hook_by_token(token)
                if hook is None:
                    status = run.status()
                    if status not in ("pending", "running"):
                        return  # ended without waiting on the hook: the checker says why
                    if time.monotonic() > deadline:
                        raise TimeoutError("the run never created its hook")
                    if self._stop.wait(0.1):
                        raise Stopped
                    continue
                if t.resume_way == "engine":
                    unsure = True
                    self.engine.resume_hook(token, payload)
                else:
                    c = self._client(conn)
                    unsure = True
                    with c.transaction():
                        row = c.execute("SELECT perdure.resume_hook(%s, %s)",
                                        (token, Jsonb(payload))).fetchone()
                    if not row or not row[0]:
                        raise HookNotFoundError(token)
                t.resumes += 1
                return
            except HookNotFoundError:
                unsure = True  # the next round reads the log first
                if self._stop.wait(0.1):
                    raise Stopped from None
            except psycopg.OperationalError as exc:
                self._retry_pause(t, conn, deadline, "resume", exc)

    def _wait(self, t: Tracked, run: Run, deadline: float) -> None:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                t.status = "timed out"
                with contextlib.suppress(Exception):
                    t.status = f"timed out ({run.status()})"
                return
            try:
                t.result = run.result(timeout=min(left, 5.0))
                t.status = "completed"
                return
            except TimeoutError:
                if self._stop.is_set():
                    raise Stopped from None
            except RunFailedError as exc:
                t.status, t.error = "failed", str(exc)
                return
            except RunCancelledError as exc:
                t.status, t.error = "cancelled", str(exc)
                return
            except (psycopg.OperationalError, RunNotFoundError) as exc:
                t.client_retries += 1
                logger.debug("run %s: waiting failed (%s); retrying", t.key, exc)
                if self._stop.wait(0.2):
                    raise Stopped from None
