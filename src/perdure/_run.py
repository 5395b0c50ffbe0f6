"""``Run``: a handle on one run, for any process that can reach the database."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._primitives import DEFAULT_STREAM
from ._serialization import decode
from ._streams import read_stream, read_stream_async, subscribe_async
from .errors import RunCancelledError, RunFailedError, RunNotFoundError
from .world import Event as _WorldEvent
from .world import RunRecord

if TYPE_CHECKING:
    from ._engine import Engine


def _when(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, tz=dt.UTC)


@dataclass(frozen=True)
class Event:
    seq: int
    event_type: str
    correlation_id: str | None
    data: Any
    created_at: dt.datetime


@dataclass(frozen=True)
class StepInfo:
    correlation_id: str
    name: str
    status: str
    attempt: int
    output: Any
    error: dict[str, Any] | None
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None


def public_event(e: _WorldEvent) -> Event:
    return Event(e.seq, e.event_type, e.correlation_id, decode(e.data, strict=False),
                 _when(e.created_at) or dt.datetime.now(dt.UTC))


class Run:
    def __init__(self, engine: Engine, run_id: str, record: RunRecord | None = None,
                 *, local: bool = False) -> None:
        self.engine = engine
        self.id = run_id
        self._record = record
        self._local = local  # started on this process's worker, which reports its end

    def __repr__(self) -> str:
        return f"<perdure Run {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- state ---------------------------------------------------------------
    def record(self) -> RunRecord:
        record = self.engine.world.get_run(self.id)
        if record is None:
            raise RunNotFoundError(f"no run {self.id}")
        self._record = record
        return record

    @property
    def workflow_name(self) -> str:
        return (self._record or self.record()).workflow_name

    def status(self) -> str:
        return self.record().status

    def events(self) -> list[Event]:
        return [public_event(e) for e in self.engine.world.list_events(self.id)]

    def steps(self) -> list[StepInfo]:
        outcomes: dict[str, tuple[Any, dict[str, Any] | None]] = {}
        for e in self.engine.world.list_events(self.id, types=["step_completed", "step_failed"]):
            data = e.data or {}
            if e.event_type == "step_completed":
                outcomes[e.correlation_id or ""] = (decode(data.get("output"), strict=False), None)
            else:
                outcomes[e.correlation_id or ""] = (None, data.get("error"))
        steps = []
        for s in self.engine.world.list_steps(self.id, limit=1_000_000).items:
            output, error = outcomes.get(s.correlation_id, (None, None))
            steps.append(StepInfo(s.correlation_id, s.name, s.status, s.attempt, output, error,
                                  _when(s.created_at), _when(s.started_at), _when(s.completed_at)))
        return steps

    # -- waiting ---------------------------------------------------------------
    def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to end; its return value, or the error it ended with.

        While this process's worker executes the run, the wait needs no LISTEN: its
        end is committed here and wakes the wait directly (on Postgres every run end
        of the database would otherwise wake this process). When the run leaves the
        worker (a timer, a hook, a lost lease, a stop), the wait is woken, LISTENs,
        and reads again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ended = self._ended_here()
        if ended is not None:
            return _outcome(self.id, ended)
        notifier = self.engine.world.notifier
        key = f"run:{self.id}"
        here = self._held_here()
        sub = notifier.subscribe_local(key) if here else notifier.subscribe(key)
        try:
            if self._record is None:
                self.record()  # RunNotFoundError for an unknown id
            skip_read = self._reported_locally()
            while True:
                ended = self._terminal_event(skip_read)
                if ended is not None:
                    return _outcome(self.id, ended)
                skip_read = False
                if here and not self._held_here():  # it went on elsewhere: LISTEN
                    sub.close()
                    sub, here = notifier.subscribe(key), False
                    continue  # and read again, the LISTEN in place
                sub.wait(self._wait_time(deadline))
        finally:
            sub.close()

    def _terminal_event(self, skip_read: bool = False) -> _WorldEvent | None:
        """The run's terminal event, if it has ended: as this process committed or
        read it already, else (unless ``skip_read``) one query, which also reads the
        ends of other runs this client started and heard end (``_ends.py``)."""
        ended = self.engine.outcomes.get(self.id)
        if ended is not None or skip_read:
            return ended
        return self.engine.ends.read(self.id)

    def _ended_here(self) -> _WorldEvent | None:
        """The end of a run started here that this process's worker committed
        already (a run with no step ends with its creation): nothing to wait for."""
        if not self._reported_locally():
            return None
        return self.engine.outcomes.get(self.id, wait=False)

    def _held_here(self) -> bool:
        """Started here and executing on this process's running worker right now:
        its end, if it comes before the run leaves the worker, is committed here."""
        worker = self.engine.worker
        return (self._local and worker is not None and not worker.stopping
                and worker.holds_run(self.id))

    def _reported_locally(self) -> bool:
        """Started on this process's worker, which is still running: its end will be
        reported here and wake us, so the first look needs no query."""
        worker = self.engine.worker
        return self._local and worker is not None and not worker.stopping

    def _wait_time(self, deadline: float | None) -> float:
        wait = self.engine.poll_interval
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"run {self.id} has not ended")
            wait = min(wait, left)
        return wait

    def cancel(self) -> bool:
        """Cancel the run: no pending step starts, running async steps are cancelled.
        False when it had already ended."""
        return self.engine._cancel(self.id)

    def stream(self, name: str | None = None, start_index: int = 0) -> Iterator[Any]:
        """The chunks of stream ``name``: stored ones from ``start_index`` (negative:
        from the tail), then live ones until the stream closes."""
        return read_stream(self.engine.world, self.id, name or DEFAULT_STREAM, start_index,
                           self.engine.poll_interval)

    # -- async twins -------------------------------------------------------------
    async def status_async(self) -> str:
        return await asyncio.to_thread(self.status)

    async def result_async(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        ended = self._ended_here()
        if ended is not None:
            return _outcome(self.id, ended)
        key = f"run:{self.id}"
        here = self._held_here()  # as result(): no LISTEN while the worker here holds it
        sub = (self.engine.world.notifier.subscribe_local(key) if here
               else await subscribe_async(self.engine.world, key))
        try:
            if self._record is None:
                await asyncio.to_thread(self.record)
            skip_read = self._reported_locally()
            while True:
                ended = await asyncio.to_thread(self._terminal_event, skip_read)
                if ended is not None:
                    return _outcome(self.id, ended)
                skip_read = False
                if here and not self._held_here():
                    sub.close()
                    sub, here = await subscribe_async(self.engine.world, key), False
                    continue
                await sub.wait_async(self._wait_time(deadline))
        finally:
            sub.close()

    async def cancel_async(self) -> bool:
        return await asyncio.to_thread(self.cancel)

    async def events_async(self) -> list[Event]:
        return await asyncio.to_thread(self.events)

    async def steps_async(self) -> list[StepInfo]:
        return await asyncio.to_thread(self.steps)

    def stream_async(self, name: str | None = None, start_index: int = 0) -> AsyncIterator[Any]:
        return read_stream_async(self.engine.world, self.id, name or DEFAULT_STREAM,
                                 start_index, self.engine.poll_interval)


def _outcome(run_id: str, event: _WorldEvent) -> Any:
    data = event.data or {}
    if event.event_type == "run_completed":
        return decode(data.get("output"), strict=False)
    if event.event_type == "run_cancelled":
        raise RunCancelledError(f"run {run_id} was cancelled")
    error = data.get("error") or {}
    raise RunFailedError(
        f"run {run_id} failed: {error.get('type', 'Error')}: {error.get('message', '')}", error
    )


class RunList(list[Run]):
    """A page of runs, newest first; ``next_cursor`` fetches the next page."""

    next_cursor: str | None = None
