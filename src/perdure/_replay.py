"""The replay driver: one live workflow run, fed events, producing new events.

Determinism rule. The body only ever sees *result* events (a step's outcome, a
timer firing, a hook payload), delivered one at a time in ``seq`` order, the loop
running until quiet after each. The body's state is therefore a function of the
ordered results alone, whether they arrive in one activation or ten, live or in
replay. Commands (step, wait and hook creation) get correlation ids from one
counter in issue order and are matched against the log by id: same id, other name
or kind is :class:`NonDeterminismError`; a recorded creation the body never issues
by its point in the log, a result for an unknown id, or any event after the run's
terminal event is :class:`CorruptedEventLogError`.

Live, the runtime stamps each new result event (so ``now()`` is known before the
commit), calls :meth:`WorkflowInstance.deliver`, and commits what
:meth:`take_batch` returns, guarded by the log's result position; on a lost race it
throws the instance away and replays.
"""

from __future__ import annotations

import asyncio
import os
import random as _random
from dataclasses import dataclass, field
from typing import Any

from ._decorators import StepFunction, WorkflowFunction
from ._failures import describe, rebuild
from ._loop import WorkflowLoop
from ._primitives import Hook
from ._serialization import decode, encode
from .errors import CorruptedEventLogError, NonDeterminismError
from .world import CREATION_EVENTS, RESULT_EVENTS, RUN_TERMINAL_EVENTS, Event, NewEvent

_KIND_OF_CREATION = {"step_created": "step", "wait_created": "wait", "hook_created": "hook"}


@dataclass
class NewStep:
    """A step this batch creates, for the worker to claim and run at once."""

    correlation_id: str
    step: StepFunction[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Batch:
    events: list[NewEvent] = field(default_factory=list)
    new_steps: list[NewStep] = field(default_factory=list)
    finished: bool = False


class WorkflowInstance:
    def __init__(self, run_id: str, workflow: WorkflowFunction[Any, Any], args: list[Any], *,
                 webhook_base: str = "", max_payload_bytes: int | None = None) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.args = args
        self.webhook_base = webhook_base.rstrip("/")
        self.max_payload_bytes = max_payload_bytes
        self.perdure_now = 0.0
        self.loop = WorkflowLoop(self, self)  # type: ignore[abstract]
        self.last_seq = 0          # newest log event this instance has seen
        self.result_seq = 0        # newest result event in the log it has consumed
        self.started = False
        self.terminal = False      # the log holds the run's terminal event
        self.outcome: tuple[str, Any] | None = None  # ("completed", value) | ("failed", exc)
        self.fatal: Exception | None = None
        self._seed = 0
        self._rng: _random.Random | None = None  # made at the first random(): 12 us a run
        self._counter = 0
        self._recorded: dict[str, Event] = {}
        self._issued: dict[str, tuple[str, str]] = {}  # cid -> (kind, name)
        self._steps: dict[str, asyncio.Future[Any]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._timer_due: dict[str, float] = {}  # waits not completed yet: cid -> resume_at
        self._hooks: dict[str, Hook] = {}
        self._main: asyncio.Task[Any] | None = None
        self._pending: list[NewEvent] = []
        self._new_steps: list[NewStep] = []

    # == inputs =================================================================
    def replay(self, events: list[Event]) -> None:
        """Apply stored events (all of them, or those after ``last_seq``) in order."""
        for e in events:
            if e.event_type in CREATION_EVENTS and e.correlation_id:
                self._recorded[e.correlation_id] = e
        for e in events:
            if e.seq <= self.last_seq:
                continue
            if self.terminal:
                raise CorruptedEventLogError(
                    f"run {self.run_id}: event seq {e.seq} ({e.event_type}) after the run ended"
                )
            self._apply(e)
            self._check_fatal()
            self.last_seq = e.seq
            if e.event_type in RESULT_EVENTS:
                self.result_seq = e.seq
        self._check_fatal()

    def _apply(self, e: Event) -> None:
        kind = e.event_type
        if kind == "run_started":
            seed = (e.data or {}).get("seed", 0)
            self._begin(e.created_at, int(seed))
        elif kind in _KIND_OF_CREATION:
            issued = self._issued.get(e.correlation_id or "")
            if issued is None:
                raise CorruptedEventLogError(
                    f"run {self.run_id}: unconsumed event seq {e.seq} {kind} "
                    f"{e.correlation_id}: the workflow never issued it"
                )
        elif kind in RESULT_EVENTS:
            self._deliver(kind, e.correlation_id or "", e.data or {}, e.created_at, e.seq)
        elif kind in RUN_TERMINAL_EVENTS:
            self.terminal = True

    def start(self, now: float) -> NewEvent:
        """Begin a run that has no ``run_started`` yet; returns that event."""
        seed = int.from_bytes(os.urandom(8), "big")
        event = NewEvent("run_started", None, {"seed": seed}, now)
        self._pending.append(event)
        self._begin(now, seed)
        self._check_fatal()
        return event

    def deliver(self, event: NewEvent) -> None:
        """Feed one new (not yet committed) result event, stamped with ``created_at``."""
        assert event.created_at is not None and event.event_type in RESULT_EVENTS
        self._pending.append(event)
        self._deliver(event.event_type, event.correlation_id or "", event.data or {},
                      event.created_at, None)
        self._check_fatal()

    def due_timers(self, now: float) -> list[str]:
        """Waits whose time has come, in due order (cancelled ones too: their
        ``wait_completed`` closes the wait in the log)."""
        due = [(at, cid) for cid, at in self._timer_due.items() if at <= now]
        return [cid for _, cid in sorted(due)]

    def next_timer(self) -> float | None:
        return min(self._timer_due.values(), default=None)

    # == outputs ================================================================
    def take_batch(self) -> Batch:
        """New events since the last commit, ending with the terminal events when the
        body has finished. The caller commits them, then calls :meth:`committed`."""
        batch = Batch(self._pending, self._new_steps)
        self._pending, self._new_steps = [], []
        if self.outcome is not None and not self.terminal:
            batch.events.extend(self._terminal_events())
            batch.finished = True
        return batch

    def committed(self, last_seq: int, events: list[Event]) -> None:
        self.last_seq = last_seq
        for e in events:
            if e.event_type in RESULT_EVENTS:
                self.result_seq = e.seq
            elif e.event_type in RUN_TERMINAL_EVENTS:
                self.terminal = True

    def _terminal_events(self) -> list[NewEvent]:
        assert self.outcome is not None
        now = self.perdure_now
        events = [NewEvent("hook_disposed", cid, None, now) for cid in self._hooks]
        status, value = self.outcome
        if status == "completed":
            data = {"output": encode(value, max_bytes=self.max_payload_bytes)}
            events.append(NewEvent("run_completed", None, data, now))
        else:
            events.append(NewEvent("run_failed", None, {"error": describe(value)}, now))
        return events

    # == the body ===============================================================
    def _begin(self, now: float, seed: int) -> None:
        self.started = True
        self.perdure_now = now
        self._seed = seed
        self._rng = None
        try:
            coro = self.workflow.fn(*self.args)
        except Exception as exc:  # noqa: BLE001 - wrong arguments fail the run
            self.outcome = ("failed", exc)
            return
        self._main = self.loop.create_task(coro, name=f"perdure:{self.run_id}")
        self._main.add_done_callback(self._main_done)
        self.loop.drive()

    def _main_done(self, task: asyncio.Task[Any]) -> None:
        if self.outcome is not None:
            return
        if task.cancelled():
            self.outcome = ("failed", asyncio.CancelledError("workflow body was cancelled"))
        elif task.exception() is not None:
            self.outcome = ("failed", task.exception())
        else:
            try:
                encode(task.result(), max_bytes=self.max_payload_bytes)
                self.outcome = ("completed", task.result())
            except Exception as exc:  # noqa: BLE001 - an unstorable result fails the run
                self.outcome = ("failed", exc)

    def _check_fatal(self) -> None:
        if self.fatal is not None:
            raise self.fatal

    def _deliver(self, kind: str, cid: str, data: dict[str, Any], at: float,
                 seq: int | None) -> None:
        self.perdure_now = max(self.perdure_now, at)
        where = f"seq {seq}" if seq is not None else "new event"
        if kind in ("step_completed", "step_failed"):
            fut = self._steps.get(cid)
            if fut is None:
                raise self._unknown(where, kind, "step", cid)
            if not fut.done():
                if kind == "step_completed":
                    fut.set_result(decode(data.get("output"), strict=False))
                else:
                    fut.set_exception(rebuild(data.get("error") or {}))
        elif kind == "wait_completed":
            if cid not in self._issued or self._issued[cid][0] != "wait":
                raise self._unknown(where, kind, "wait", cid)
            self._timer_due.pop(cid, None)
            handle = self._timers.pop(cid, None)
            if handle is not None:
                self.loop.fire_timer(handle)
        elif kind == "hook_received":
            hook = self._hooks.get(cid)
            if hook is None:
                raise self._unknown(where, kind, "hook", cid)
            hook._push(decode(data.get("payload"), strict=False))
        self.loop.drive()

    def _unknown(self, where: str, kind: str, entity: str, cid: str) -> CorruptedEventLogError:
        return CorruptedEventLogError(
            f"run {self.run_id}: {where} {kind} for unknown {entity} {cid}"
        )

    # == WorkflowRuntime (called from the body) ================================
    def _next_id(self, kind: str, name: str) -> tuple[str, Event | None]:
        self._counter += 1
        cid = f"{kind[0]}{self._counter}"
        recorded = self._recorded.get(cid)
        if recorded is not None:
            rec_kind = _KIND_OF_CREATION[recorded.event_type]
            rec_name = (recorded.data or {}).get("name", "") if rec_kind == "step" else rec_kind
            if rec_kind != kind or rec_name != name:
                err = NonDeterminismError(
                    f"run {self.run_id}: command #{self._counter} is {rec_kind} {rec_name!r} in "
                    f"the log but the workflow now issues {kind} {name!r}"
                )
                self.fatal = self.fatal or err
                raise err
        self._issued[cid] = (kind, name)
        return cid, recorded

    def call_step(self, step: StepFunction[Any, Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
        data: dict[str, Any] = {"name": step.name,
                                "args": encode(list(args), max_bytes=self.max_payload_bytes)}
        if kwargs:
            data["kwargs"] = encode(kwargs, max_bytes=self.max_payload_bytes)
        cid, recorded = self._next_id("step", step.name)
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._steps[cid] = fut
        if recorded is None:
            self._pending.append(NewEvent("step_created", cid, data, self.perdure_now))
            self._new_steps.append(NewStep(cid, step, args, kwargs))
        return _await_future(fut)

    def sleep(self, seconds: float) -> Any:
        return asyncio.sleep(seconds)

    def start_timer(self, handle: asyncio.TimerHandle) -> None:
        cid, recorded = self._next_id("wait", "wait")
        resume_at = handle.when()
        if recorded is None:
            data = {"resume_at": resume_at}
            self._pending.append(NewEvent("wait_created", cid, data, self.perdure_now))
        else:
            resume_at = float((recorded.data or {}).get("resume_at", resume_at))
        self._timers[cid] = handle
        self._timer_due[cid] = resume_at

    def cancel_timer(self, handle: asyncio.TimerHandle) -> None:
        for cid, h in list(self._timers.items()):
            if h is handle:
                del self._timers[cid]

    def create_hook(self, token: str | None, webhook: bool) -> Hook:
        cid, recorded = self._next_id("hook", "hook")
        if recorded is not None:
            token = str((recorded.data or {}).get("token"))
        elif token is None:
            token = os.urandom(16).hex()
        url = f"{self.webhook_base}/webhooks/{token}" if webhook else None
        hook = Hook(token, cid, self.loop, url)
        self._hooks[cid] = hook
        if recorded is None:
            data = {"token": token, "webhook": webhook}
            self._pending.append(NewEvent("hook_created", cid, data, self.perdure_now))
        return hook

    def now(self) -> float:
        return self.perdure_now

    def random(self) -> float:
        return self._random().random()

    def randbits(self, bits: int) -> int:
        return self._random().getrandbits(bits)

    def _random(self) -> _random.Random:
        """The run's generator, seeded with its recorded seed: made on first use, as
        most workflows never ask for a random number."""
        if self._rng is None:
            self._rng = _random.Random(self._seed)
        return self._rng

    def webhook_url(self, token: str) -> str:
        return f"{self.webhook_base}/webhooks/{token}"

    def dispose(self) -> None:
        self.loop.dispose()


async def _await_future(fut: asyncio.Future[Any]) -> Any:
    return await fut

