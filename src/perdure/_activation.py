"""Advancing runs: workflow activations and step completions, each one commit.

Two entry points share one commit routine:

- :meth:`Advancer.activate` runs for a claimed workflow job: take the run's live
  instance from the cache (or replay the log into a new one), apply the events it
  has not seen, start the run or fire due timers, and commit the new events.
- :meth:`Advancer.complete_step` runs when a step finishes on this worker: when the
  run's instance is cached, the step's result is delivered to it at once and the
  result, the workflow's next commands and the claims of its next steps commit in
  one transaction (one commit per sequential step). Otherwise the result commits
  with a continuation job.

Every commit is guarded by the log's result position (``expected_result_seq``): a
result another worker appended meanwhile makes it fail with ``StaleStateError``,
and the instance is dropped and rebuilt from the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._batcher import append_batcher
from ._cache import InstanceCache
from ._decorators import StepFunction, get_workflow
from ._failures import describe
from ._outcomes import Outcomes
from ._replay import Batch, NewStep, WorkflowInstance
from ._serialization import decode
from ._steps import StepOutcome
from .errors import (
    CorruptedEventLogError,
    EntityConflictError,
    HookTokenConflictError,
    NonDeterminismError,
    StaleStateError,
    WorkflowNotFoundError,
)
from .world import (
    RUN_TERMINAL,
    RUN_TERMINAL_EVENTS,
    AppendRequest,
    AppendResult,
    Event,
    NewEvent,
    NewJob,
    RunRecord,
    World,
)

logger = logging.getLogger(__name__)

MAX_RACES = 8
ACKED_AT_END = 10_000  # job ids remembered as acked by the append that ended their run


@dataclass
class LocalStep:
    """A step this worker claimed in the commit that created it."""

    run_id: str
    correlation_id: str
    step: StepFunction[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    job_id: int
    attempt: int = 1
    outcome: StepOutcome | None = None  # of an attempt already made (run before the claim)
    start: NewEvent | None = None  # its step_started, to commit with the outcome


@dataclass
class Creation:
    """A run this worker starts and activates in the commit that creates it."""

    workflow_name: str
    input_json: str
    created: Event  # its run_created, as the activation saw it
    idempotency_key: str | None
    record: RunRecord | None = None  # the run as the creating commit left it


class KeyTaken(Exception):
    """The idempotency key of a :class:`Creation` names an existing run: nothing was
    written."""

    def __init__(self, record: RunRecord) -> None:
        super().__init__(record.id)
        self.record = record


@dataclass
class _Pending:
    """A step outcome waiting in its run's inbox for the run's committer."""

    event: NewEvent
    job_id: int
    start: NewEvent | None = None  # its step_started, when not committed yet (a short step)


class Advancer:
    def __init__(self, world: World, cache: InstanceCache, worker_id: str, *,
                 lease_seconds: float, webhook_base: str, max_payload_bytes: int | None,
                 reserve: Callable[[int], int], on_future_job: Callable[[float], None],
                 outcomes: Outcomes | None = None,
                 attempt_short: Callable[[str, NewStep], StepOutcome | None] | None = None,
                 append: Callable[[AppendRequest], AppendResult] | None = None,
                 held_jobs: Callable[[str], list[int]] | None = None,
                 on_queued: Callable[[str, list[NewEvent]], None] | None = None,
                 ) -> None:
        self.world = world
        # World.append, maybe batched with other runs' appends (_batcher.py)
        self._append = append or append_batcher(world)
        self.cache = cache
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.webhook_base = webhook_base
        self.max_payload_bytes = max_payload_bytes
        self._reserve = reserve            # capacity for n local steps -> granted count
        self._on_future_job = on_future_job  # a job of ours comes due at this time
        # Runs a step known to be short, else None (see _commit_activation).
        self._attempt_short = attempt_short
        self.outcomes = outcomes or Outcomes()  # runs this worker ends, for Run.result
        # The jobs this worker holds for a run: an append that ends the run acks them
        # all (the steps still running are a race's losers, their results moot).
        self._held_jobs = held_jobs or (lambda run_id: [])
        # Told the step_created events of the steps it left in the queue, once
        # committed: their claimer, if it is this worker, needs their arguments.
        self._on_queued = on_queued
        self._acked_at_end: OrderedDict[int, None] = OrderedDict()
        self._inbox: dict[str, list[_Pending]] = {}
        self._leaders: set[str] = set()  # runs whose outcomes a thread is committing
        self._inbox_guard = threading.Lock()
        self.replays = 0                   # instances rebuilt from the log
        self.events_read = 0               # events loaded from the database

    # == workflow jobs ========================================================
    def activate(self, run_id: str, job_id: int | None,
                 known: list[Event] | None = None) -> list[LocalStep]:
        """``known``: the run's whole log as this worker last read it, when it has
        one (a local start's ``run_created``; the logs read with a claim): the
        activation then reads nothing. Should the log have moved on since (a
        cancel), the commit is refused and the activation starts over from the log."""
        ack = [job_id] if job_id is not None else []
        for _ in range(MAX_RACES):
            with self.cache.lock(run_id):
                try:
                    return self._activate_locked(run_id, ack, known)
                except StaleStateError:
                    self.cache.evict(run_id)
                except EntityConflictError:
                    self.cache.evict(run_id)
                    if known is None:
                        raise
                except BaseException:
                    self.cache.evict(run_id)
                    raise
            known = None
        raise RuntimeError(f"run {run_id}: lost {MAX_RACES} races in a row")

    def _activate_locked(self, run_id: str, ack: list[int],
                         known: list[Event] | None) -> list[LocalStep]:
        cached = self.cache.get(run_id)
        if cached is None and known is not None:
            events = known
        else:
            events = self.world.list_events(run_id, after_seq=cached.last_seq if cached else 0)
            self.events_read += len(events)
        ended = events[-1].event_type in RUN_TERMINAL_EVENTS if events else cached is None
        if ended:  # an unknown run (no events at all) or one that has ended
            self.cache.evict(run_id)
            if ack:
                self.world.ack(self.worker_id, ack)
            return []
        try:
            inst = self._catch_up(run_id, cached, events)
            now = time.time()
            if not inst.started:
                inst.start(now)
            for cid in inst.due_timers(now):
                inst.deliver(NewEvent("wait_completed", cid, None, now))
        except WorkflowNotFoundError as exc:
            # Maybe a newer deployment knows it: hand the run back for later.
            logger.warning("%s; run %s is put back for another worker", exc, run_id)
            self.cache.evict(run_id)
            retry_at = time.time() + 10.0
            self.world.enqueue([NewJob("workflow", run_id, due_at=retry_at)])
            if ack:
                self.world.ack(self.worker_id, ack)
            return []
        except Exception as exc:  # noqa: BLE001 - replay is pure: any error is the run's own
            # (a corrupted log, changed code, undecodable input): fail the run with that
            # cause instead of retrying a job that can never succeed.
            self.cache.evict(run_id)
            self._fail_run(run_id, exc, ack)
            return []
        return self._commit_activation(inst, ack)

    def _commit_activation(self, inst: WorkflowInstance, ack: list[int]) -> list[LocalStep]:
        """Commit an activation. When it creates one step known to be short, the step
        runs first, here, and its start and outcome commit with the activation and
        the workflow's advance on that outcome: one transaction instead of two
        (``_step_times`` says why this delays nothing that completed). An attempt
        that is to be retried commits the usual way, the step claimed with the
        attempt's outcome for the worker to record (were no slot free for that claim,
        the attempt would go unrecorded and the step run again from the queue)."""
        batch = inst.take_batch()
        if self._attempt_short is None or batch.finished or len(batch.new_steps) != 1:
            return self._commit(inst, batch, ack)
        new = batch.new_steps[0]
        outcome = self._attempt_short(inst.run_id, new)
        if outcome is None:
            return self._commit(inst, batch, ack)
        if not outcome.final:
            local = self._commit(inst, batch, ack)
            for ls in local:
                if ls.correlation_id == new.correlation_id:
                    ls.outcome = outcome
            return local
        events = _with_claims(batch.events, {new.correlation_id}, inst.perdure_now)
        inst.deliver(outcome.event)
        after = inst.take_batch()
        return self._commit(inst, Batch(events + after.events, after.new_steps, after.finished),
                            ack)

    def _catch_up(self, run_id: str, inst: WorkflowInstance | None,
                  events: list[Any]) -> WorkflowInstance:
        if inst is None:
            self.replays += 1
            inst = self._new_instance(run_id, events)
        inst.replay(events)
        return inst

    def _new_instance(self, run_id: str, events: list[Any]) -> WorkflowInstance:
        if not events or events[0].event_type != "run_created":
            raise CorruptedEventLogError(f"run {run_id}: the log does not begin with run_created")
        data = events[0].data or {}
        name = str(data.get("workflow"))
        wf = get_workflow(name)
        if wf is None:
            raise WorkflowNotFoundError(f"workflow {name!r} is not registered in this worker")
        args = decode(data.get("input") or [])
        if not isinstance(args, list):
            raise CorruptedEventLogError(f"run {run_id}: input is not a list of arguments")
        return WorkflowInstance(run_id, wf, args, webhook_base=self.webhook_base,
                                max_payload_bytes=self.max_payload_bytes)

    def create_started(self, creation: Creation) -> tuple[RunRecord | None, list[LocalStep]]:
        """Start a run and commit its first activation with its creation (one commit,
        no workflow job). Returns the run as that commit left it and the steps it
        claimed for this worker; the existing run and no steps when the idempotency
        key was taken. ``(None, [])`` when the run cannot start this way (its workflow
        is not registered here, its body failed, a hook token is taken): nothing was
        written, and the caller creates the run for an ordinary activation, which
        records any such failure in the run's log."""
        run_id = creation.created.run_id
        with self.cache.lock(run_id):
            try:
                inst = self._new_instance(run_id, [creation.created])
                inst.replay([creation.created])
                inst.start(creation.created.created_at)
                batch = inst.take_batch()
            except Exception:  # noqa: BLE001 - the ordinary activation records it
                return None, []
            try:
                local = self._commit(inst, batch, [], creation)
            except KeyTaken as taken:
                return taken.record, []
            except HookTokenConflictError:
                return None, []
        return creation.record, local

    # == step results =========================================================
    def complete_step(self, run_id: str, outcome: NewEvent, job_id: int,
                      start: NewEvent | None = None) -> list[LocalStep]:
        """Record a step's final outcome (``step_completed`` / ``step_failed``), after
        its ``start`` when that is not committed yet (a short step claimed from the
        queue, run before its start commits: see ``Worker._run_claimed_step``).

        Group commit with a leader: the first outcome of a run to arrive makes its
        thread the run's committer, which takes every outcome waiting in the run's
        inbox, commits them together, and goes on while more arrive. The other
        threads leave their outcome in the inbox and are free at once: they run the
        next steps of a fan-out while the leader commits. Waiting for their commit
        instead kept a fan-out's threads blocked one commit at a time (``gather-100``
        took twice as long: docs/architecture.md). Their jobs are acked by the
        leader's commit; until then their leases hold them.
        Returns the steps the leader's commits claimed for this worker.
        """
        item = _Pending(outcome, job_id, start)
        with self._inbox_guard:
            self._inbox.setdefault(run_id, []).append(item)
            if run_id in self._leaders:
                return []
            self._leaders.add(run_id)
        return self._lead(run_id)

    def _lead(self, run_id: str) -> list[LocalStep]:
        """Commit the run's inbox until it is empty. A commit that fails (a dropped
        connection: it may or may not have happened) is logged and its outcomes left
        to their jobs' leases, as a lone outcome's would be; the outcomes that
        arrived meanwhile are committed next, by this thread, since their own
        threads have moved on."""
        local: list[LocalStep] = []
        try:
            while True:
                with self._inbox_guard:
                    items = self._inbox.pop(run_id, None)
                    if not items:
                        self._leaders.discard(run_id)
                        return local
                try:
                    local += self._commit_outcomes(run_id, items)
                except Exception:  # noqa: BLE001 - the leases sort these out
                    logger.exception("run %s: %d step outcomes failed to record", run_id,
                                     len(items))
        except BaseException:
            with self._inbox_guard:  # whoever adds an outcome next leads
                self._leaders.discard(run_id)
            raise

    def _commit_outcomes(self, run_id: str, items: list[_Pending]) -> list[LocalStep]:
        with self.cache.lock(run_id):
            inst = self.cache.get(run_id)
            if inst is not None and not inst.terminal:
                try:
                    for item in items:
                        inst.deliver(item.event)
                    batch = inst.take_batch()
                    batch.events = _with_starts(batch.events, items)
                    return self._commit(inst, batch, [i.job_id for i in items])
                except (StaleStateError, CorruptedEventLogError, NonDeterminismError,
                        EntityConflictError):
                    self.cache.evict(run_id)
                except BaseException:
                    # A dropped connection: the speculative advance may or may not
                    # have committed. Drop the instance; leases sort out the rest.
                    self.cache.evict(run_id)
                    raise
            self._record_outcomes(run_id, items)
        return []

    def _record_outcomes(self, run_id: str, items: list[_Pending]) -> None:
        """Without a live instance: the outcomes and a continuation job, one commit."""
        events = _with_starts([i.event for i in items], items)
        acks = [i.job_id for i in items]
        if self.outcomes.get(run_id, wait=False) is not None:
            # This worker ended the run (a race's losers): nothing more is recorded,
            # and the append that ended it acked the jobs it held then.
            acks = self._not_acked_at_end(acks)
            if acks:
                self.world.ack(self.worker_id, acks)
            return
        try:
            self._append(AppendRequest(run_id, events, jobs=[NewJob("workflow", run_id)],
                                       ack=acks))
            return
        except EntityConflictError:
            run = self.world.get_run(run_id) if len(items) > 1 else None
            if run is None or run.status in RUN_TERMINAL:
                # the run ended, or (one outcome) another attempt finished first
                self.world.ack(self.worker_id, acks)
                return
        for item in items:
            self._record_outcomes(run_id, [item])

    # == the one commit =====================================================
    def _commit(self, inst: WorkflowInstance, batch: Batch, ack: list[int],
                creation: Creation | None = None) -> list[LocalStep]:
        run_id = inst.run_id
        jobs: list[NewJob] = []
        local: list[tuple[int, Any]] = []
        claimed: set[str] = set()
        granted = 0
        if not batch.finished and batch.new_steps:
            granted = self._reserve(len(batch.new_steps))
            for i, new in enumerate(batch.new_steps):
                mine = i < granted
                if mine:
                    claimed.add(new.correlation_id)
                    local.append((len(jobs), new))
                jobs.append(NewJob("step", run_id, new.correlation_id,
                                   claimed_by=self.worker_id if mine else None,
                                   lease_seconds=self.lease_seconds))
        events = _with_claims(batch.events, claimed, inst.perdure_now)
        next_timer = None if batch.finished else inst.next_timer()
        if next_timer is not None:
            jobs.append(NewJob("workflow", run_id, due_at=next_timer))
        held: list[int] = []  # this worker's other jobs of a run this append ends
        if batch.finished:
            self.outcomes.announce(run_id)
            held = self._held_others(run_id, ack)
            ack = ack + held
        try:
            if creation is None:
                result = self._append(AppendRequest(
                    run_id, events, expected_result_seq=inst.result_seq, jobs=jobs, ack=ack,
                    consumed=True, close_streams=batch.finished,
                ))
            else:
                result = self._create(creation, events, jobs, batch.finished)
        except HookTokenConflictError as exc:
            self._release(granted)
            self._not_acked_at_end(held)
            self.outcomes.settle(run_id, None)
            self.cache.evict(run_id)
            if creation is not None:
                raise
            self._fail_run(run_id, exc, ack)
            return []
        except BaseException:
            self._release(granted)
            self._not_acked_at_end(held)
            self.outcomes.settle(run_id, None)
            raise
        if batch.finished:
            self.outcomes.settle(run_id, result.events[-1])
        if self._on_queued is not None and len(jobs) > granted:
            queued = {j.correlation_id for j in jobs if j.kind == "step" and j.claimed_by is None}
            self._on_queued(run_id, [e for e in events if e.event_type == "step_created"
                                     and e.correlation_id in queued])
        inst.committed(result.last_seq, result.events)
        if next_timer is not None:
            self._on_future_job(next_timer)
        if batch.finished or inst.terminal:
            self.cache.evict(run_id)
        else:
            self.cache.put(run_id, inst)
        return [LocalStep(run_id, new.correlation_id, new.step, new.args, new.kwargs,
                          result.job_ids[index]) for index, new in local]

    def _held_others(self, run_id: str, ack: list[int]) -> list[int]:
        """The other jobs this worker holds for the run that this append ends, to be
        acked with it. Their steps' outcomes then need no ack call of their own
        (``_record_outcomes``): a race of 10 made two more write transactions."""
        others = [j for j in self._held_jobs(run_id) if j not in ack]
        if others:
            with self._inbox_guard:
                for job_id in others:
                    self._acked_at_end[job_id] = None
                while len(self._acked_at_end) > ACKED_AT_END:
                    self._acked_at_end.popitem(last=False)
        return others

    def _not_acked_at_end(self, job_ids: list[int]) -> list[int]:
        """Of ``job_ids``, those no ending append acked (forgetting the others)."""
        if not job_ids:
            return []
        with self._inbox_guard:
            left = [j for j in job_ids if j not in self._acked_at_end]
            for job_id in job_ids:
                self._acked_at_end.pop(job_id, None)
        return left

    def _create(self, creation: Creation, events: list[NewEvent], jobs: list[NewJob],
                finished: bool) -> AppendResult:
        created = creation.created
        record, result = self.world.create_run_started(
            creation.workflow_name, creation.input_json, run_id=created.run_id,
            created_at=created.created_at, events=events, jobs=jobs, close_streams=finished,
            idempotency_key=creation.idempotency_key)
        if result is None:
            raise KeyTaken(record)
        creation.record = record
        return result

    def _release(self, granted: int) -> None:
        if granted:
            self._reserve(-granted)

    def _fail_run(self, run_id: str, exc: BaseException, ack: list[int]) -> None:
        logger.error("run %s failed: %s", run_id, exc, extra={"run_id": run_id})
        ended = end_run(self.world, run_id, NewEvent("run_failed", None, {"error": describe(exc)}),
                        ack=ack)
        if not ended and ack:
            self.world.ack(self.worker_id, ack)


def _with_starts(events: list[NewEvent], items: list[_Pending]) -> list[NewEvent]:
    """Each not yet committed ``step_started`` right before its step's outcome."""
    starts = {i.event.correlation_id: i.start for i in items if i.start is not None}
    if not starts:
        return events
    out = []
    for event in events:
        start = starts.pop(event.correlation_id, None) if event.event_type in (
            "step_completed", "step_failed") else None
        if start is not None:
            out.append(start)
        out.append(event)
    return out


def _with_claims(events: list[NewEvent], claimed: set[str], now: float) -> list[NewEvent]:
    """Each claimed step's ``step_started`` right after its ``step_created`` (the
    backends write such a pair as one row)."""
    if not claimed:
        return list(events)
    out = []
    for event in events:
        out.append(event)
        if event.event_type == "step_created" and event.correlation_id in claimed:
            out.append(NewEvent("step_started", event.correlation_id, {"attempt": 1}, now))
    return out


def end_run(world: World, run_id: str, terminal: NewEvent, *, ack: list[int] | None = None) -> bool:
    """End a run from outside its workflow body (cancel, a corrupted log): dispose its
    live hooks and append ``terminal`` in one commit, retried if the log moves.
    False when the run had already ended."""
    for _ in range(MAX_RACES):
        run = world.get_run(run_id)
        if run is None or run.status in RUN_TERMINAL:
            return False
        hooks = world.list_hooks(run_id=run_id, status="active").items
        events = [NewEvent("hook_disposed", h.correlation_id) for h in hooks] + [terminal]
        try:
            world.append(run_id, events, expected_seq=run.last_seq, ack=ack or (),
                         consumed=True, close_streams=True)
            return True
        except StaleStateError:
            continue
        except EntityConflictError:
            return False
    raise RuntimeError(f"run {run_id}: could not be ended, its log keeps moving")
