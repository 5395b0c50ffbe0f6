"""The worker: claims jobs, runs activations and steps, renews leases, recovers runs.

Threads: one dispatcher (claims while there are free slots, then sleeps on the
``jobs`` wake-up; a busy worker that other workers compete with claims at most
once per ``claim_cooldown``, see ``_pacing.py``),
``concurrency`` executor threads, a heartbeat and a recovery sweeper. A slot is
held from claim to acknowledgement. Steps a workflow creates are claimed in the
same commit when slots are free, and the thread that committed runs the first of
them itself: a sequential workflow never goes through the queue.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from . import _recovery
from ._activation import Advancer, Creation, LocalStep
from ._batcher import append_batcher
from ._cache import InstanceCache
from ._decorators import StepFunction, get_step
from ._leases import Heartbeat
from ._outcomes import Outcomes
from ._pacing import ClaimPacing
from ._replay import NewStep
from ._step_inputs import StepInputs
from ._step_times import StepTimes
from ._steps import RunningSteps, StepOutcome, run_attempt
from ._threads import TaskThreads
from ._upkeep import QueueUpkeep
from .errors import EntityConflictError
from .world import (
    RUN_TERMINAL,
    STEP_TERMINAL,
    AppendRequest,
    Event,
    Job,
    NewEvent,
    NewJob,
    RunRecord,
    World,
    uuid7,
)

logger = logging.getLogger(__name__)

# Jobs a worker runs at once. 32 rather than 16: steps mostly wait on I/O, and
# under load a wider window lets claims and appends share more runs per commit
# (two workers, one-step workflows: about 2,000/s with 16, 2,160 to 2,330 with 32;
# docs/architecture.md).
DEFAULT_CONCURRENCY = 32
BACKLOG = 4  # steps claimed at creation, per executor thread (see _reserve_created)
LOG_PREFIX = 32  # events of each claimed run read with the claim: whole logs of new runs
CLAIM_COOLDOWN = 0.01  # seconds between a busy, contended worker's claims (_pacing.py)


class Worker:
    def __init__(self, world: World, *, concurrency: int = DEFAULT_CONCURRENCY,
                 lease_seconds: float = 30.0, poll_interval: float = 1.0,
                 recovery_interval: float = 60.0,
                 worker_id: str | None = None, webhook_base: str = "",
                 max_payload_bytes: int | None = None, cache_size: int = 1000,
                 outcomes: Outcomes | None = None,
                 claim_cooldown: float = CLAIM_COOLDOWN) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.world = world
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid7()[-8:]}"
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.pacing = ClaimPacing(claim_cooldown)
        self.recovery_interval = recovery_interval
        self.max_payload_bytes = max_payload_bytes
        self.cache = InstanceCache(cache_size)
        self.running = RunningSteps()
        self.step_times = StepTimes()
        self.append = append_batcher(world)  # every append of this worker (_batcher.py)
        self.inputs = StepInputs(world)  # queued steps' arguments (_step_inputs.py)
        self.advancer = Advancer(
            world, self.cache, self.id, lease_seconds=lease_seconds, webhook_base=webhook_base,
            max_payload_bytes=max_payload_bytes, reserve=self._reserve_created,
            on_future_job=self._note_future_job, outcomes=outcomes,
            attempt_short=self._attempt_if_short, append=self.append,
            held_jobs=self._held_for, on_queued=self.inputs.note,
        )
        self._slots_lock = threading.Lock()
        self._busy = 0
        self._held: dict[int, str] = {}  # job id -> run id, for lease renewal
        self._next_due: float | None = None
        self._starved = False  # the dispatcher found no free slot last time
        self._last_free = 1
        self._woken = False  # the next claim follows a wake-up, not a poll's timeout
        self._stop = threading.Event()
        self._drained = threading.Condition(self._slots_lock)
        self._tasks = TaskThreads(concurrency + 1, "perdure-step")
        self._wake = world.notifier.subscribe("jobs")
        self._threads: list[threading.Thread] = []
        self._heartbeat = Heartbeat(world, self.id, lease_seconds, self._held_jobs,
                                    self._check_cancelled)
        self.upkeep = QueueUpkeep(world)
        self.jobs_done = 0

    # == lifecycle ==========================================================
    def start(self) -> None:
        for target, name in ((self._dispatch_loop, "perdure-dispatcher"),
                             (self._recovery_loop, "perdure-recovery")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._heartbeat.start()
        self.upkeep.start()
        logger.info("worker %s started (concurrency %d)", self.id, self.concurrency)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, let in-flight work finish (up to ``timeout``), give back the rest."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._drained:
            while self._busy > 0 and time.monotonic() < deadline:
                self._drained.wait(deadline - time.monotonic())
            leftover = list(self._held)
        for thread in self._threads:
            thread.join(timeout=5)
        self._heartbeat.stop()
        self.upkeep.stop()
        if leftover:
            try:
                self.world.release(self.id, leftover)
            except Exception:  # noqa: BLE001 - leases expire anyway
                logger.warning("could not release jobs %s", leftover, exc_info=True)
        for run_id in self.running.run_ids():
            self.running.cancel_run(run_id)
        self._tasks.shutdown()
        self._wake.close()
        self.cache.clear()
        logger.info("worker %s stopped", self.id)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # == slots ==============================================================
    def _reserve(self, n: int, limit: int | None = None) -> int:
        """Take up to ``n`` slots (give back ``-n``); ``limit``: the most slots that
        may be taken in all (default ``concurrency``)."""
        if n < 0:
            self._give_back(-n)
            return 0
        with self._slots_lock:
            if self._stop.is_set():
                return 0
            cap = self.concurrency if limit is None else limit
            granted = max(0, min(n, cap - self._busy))
            self._busy += granted
            return granted

    def _reserve_created(self, n: int) -> int:
        """Slots for steps a commit of this worker creates: beyond ``concurrency``,
        up to ``BACKLOG`` times it, the extra ones waiting for an executor thread.
        A fan-out then claims its steps in the commit that creates them instead of
        one queue round trip each; their leases are renewed while they wait, and a
        wider fan-out leaves the rest in the queue for other workers."""
        return self._reserve(n, self.concurrency * BACKLOG)

    def _hold(self, job_id: int, run_id: str) -> None:
        with self._slots_lock:
            self._held[job_id] = run_id

    def _finish(self, job_id: int, *, keep: bool = False) -> None:
        """The job's work is done (its slot goes back); ``keep``: the job carries on
        as the next step's, still held."""
        with self._slots_lock:
            run_id = None if keep else self._held.pop(job_id, None)
            left = run_id if run_id is not None and run_id not in self._held.values() else None
            self.jobs_done += 1
        self._give_back(1)
        self.upkeep.finished()
        if left is not None:
            # Waiters on this run here wait without LISTEN while this worker holds it
            # (Run.result): it has ended, or goes on elsewhere. Wake them to look.
            self.world.notifier.publish(f"run:{left}")

    def _pass_on(self, job_id: int, following: list[LocalStep]) -> None:
        """Finish ``job_id`` once the steps that follow it are held: the run stays
        held from one to the next (a chain's job may carry on as the next step's)."""
        for ls in following:
            self._hold(ls.job_id, ls.run_id)
        self._finish(job_id, keep=any(ls.job_id == job_id for ls in following))

    def holds_run(self, run_id: str) -> bool:
        """Whether this worker holds a job of the run (it is executing it)."""
        with self._slots_lock:
            return run_id in self._held.values()

    def _give_back(self, n: int) -> None:
        with self._slots_lock:
            self._busy -= n
            self._drained.notify_all()
            starved, self._starved = self._starved, False
        if starved:
            self._wake.set()  # the dispatcher found no free slot: a wake-up may be lost

    def _held_for(self, run_id: str) -> list[int]:
        """The jobs this worker holds for one run."""
        with self._slots_lock:
            return [job_id for job_id, held in self._held.items() if held == run_id]

    def _held_jobs(self) -> dict[int, str]:
        """Job id -> run id of the jobs this worker holds (the heartbeat renews them)."""
        with self._slots_lock:
            return dict(self._held)

    def _note_future_job(self, due_at: float) -> None:
        with self._slots_lock:
            if self._next_due is None or due_at < self._next_due:
                self._next_due = due_at
        self._wake.set()

    # == local starts =======================================================
    def start_run(self, workflow_name: str, encoded_input: Any, input_json: str, run_id: str,
                  idempotency_key: str | None) -> RunRecord | None:
        """Create a run that this worker executes at once. Its first activation runs
        here, on the caller's thread, and commits with the run's creation (one
        commit, no workflow job); the steps that commit claims go to executor
        threads. None when no slot is free (the caller then creates the run for the
        queue). The start holds a slot from the backlog allowance, like the steps a
        commit creates: the dispatcher holds every free slot while a claim is in
        flight."""
        if self._reserve_created(1) == 0:
            return None
        created = Event(run_id, 1, "run_created", None,
                        {"workflow": workflow_name, "input": encoded_input,
                         "idempotency_key": idempotency_key}, time.time())
        try:
            record, local = self.advancer.create_started(
                Creation(workflow_name, input_json, created, idempotency_key))
        except BaseException:
            self._reserve(-1)
            raise
        if record is None:  # nothing written: the ordinary way, the slot goes with it
            return self._start_claimed(workflow_name, input_json, created, idempotency_key)
        self._reserve(-1)
        for step in local:  # leases renewed while they wait for an executor thread
            self._hold(step.job_id, step.run_id)
        if local:
            self._tasks.submit(self._run_chain, local)
        return record

    def _start_claimed(self, workflow_name: str, input_json: str, created: Event,
                       key: str | None) -> RunRecord:
        """With the start's slot: the run's job is claimed in the creating commit and
        handed to an executor thread with the ``run_created`` event the activation
        would otherwise read."""
        try:
            record, job = self.world.create_run_claimed(
                workflow_name, input_json, run_id=created.run_id, worker_id=self.id,
                lease_seconds=self.lease_seconds, idempotency_key=key)
        except BaseException:
            self._reserve(-1)
            raise
        if job is None:  # the idempotency key was used: that run is not ours to start
            self._reserve(-1)
            return record
        created = Event(created.run_id, 1, "run_created", None, created.data,
                        record.created_at)
        self._hold(job.id, created.run_id)
        self._tasks.submit(self._run_job, job, [created])
        return record

    # == dispatching ========================================================
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self._claim_some()
            except Exception:  # noqa: BLE001 - database away: retry after a pause
                logger.warning("claiming jobs failed; retrying", exc_info=True)
                self._stop.wait(min(1.0, self.poll_interval))
                continue
            if claimed < self._last_free:  # the queue is drained (or no slot): wait
                self._woken = self._wake.wait(self._idle_timeout())
                with self._slots_lock:
                    busy = self._busy > 0
                pause = self.pacing.pause(busy=busy, now=time.monotonic())
                if pause > 0:
                    self._stop.wait(pause)

    def _claim_some(self) -> int:
        with self._slots_lock:  # reserve, or note (atomically) that a give-back must wake us
            free = 0 if self._stop.is_set() else max(0, self.concurrency - self._busy)
            self._busy += free
            self._starved = free == 0
        self._last_free = max(free, 1)
        if free == 0:
            return 0
        began, woken, self._woken = time.monotonic(), self._woken, False
        try:
            # With the claim, the logs of the runs it continues: no read per activation.
            jobs, logs = self.world.claim_with_logs(
                self.id, limit=free, lease_seconds=self.lease_seconds, log_limit=LOG_PREFIX)
        except BaseException:
            self._reserve(-free)
            raise
        self.pacing.claimed(asked=free, got=len(jobs), woken=woken, at=began)
        if len(jobs) < free:
            self._reserve(-(free - len(jobs)))
        for job in jobs:
            self._hold(job.id, job.run_id)
            log = logs.get(job.run_id)
            whole = log is not None and len(log) < LOG_PREFIX and job.run_id not in self.cache
            self._tasks.submit(self._run_job, job, log if whole else None)
        return len(jobs)

    def _idle_timeout(self) -> float:
        timeout = self.poll_interval
        with self._slots_lock:
            if self._next_due is not None:
                until = self._next_due - time.time()
                if until <= 0:
                    self._next_due = None
                    return 0.0
                timeout = min(timeout, until)
        return timeout

    # == running jobs =======================================================
    def _run_job(self, job: Job, known: list[Event] | None = None) -> None:
        local: list[LocalStep] = []
        try:
            if job.kind == "workflow":
                local = self.advancer.activate(job.run_id, job.id, known)
            else:
                local = self._run_claimed_step(job)
        except Exception:  # noqa: BLE001 - the lease expires and another attempt follows
            logger.exception("job %s (%s, run %s) failed", job.id, job.kind, job.run_id)
        finally:
            self._pass_on(job.id, local)
        self._run_chain(local)

    def _run_chain(self, local: list[LocalStep]) -> None:
        """Run steps claimed locally, and held already by whoever handed them over
        (``start_run``, ``_pass_on``): the first on this thread, the rest on others."""
        while local:
            first, rest = local[0], local[1:]
            for other in rest:
                self._tasks.submit(self._run_chain, [other])
            following: list[LocalStep] = []
            try:
                following = self._execute(first)
            except Exception:  # noqa: BLE001
                logger.exception("step %s of run %s failed to record", first.correlation_id,
                                 first.run_id)
            finally:
                self._pass_on(first.job_id, following)
            local = following

    def _attempt(self, run_id: str, cid: str, step: StepFunction[Any, Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], attempt: int) -> StepOutcome:
        began = time.perf_counter()
        outcome = run_attempt(step, args, kwargs, run_id=run_id, correlation_id=cid,
                              attempt=attempt, world=self.world, running=self.running,
                              max_payload_bytes=self.max_payload_bytes)
        self.step_times.record(step.name, time.perf_counter() - began)
        return outcome

    def _attempt_if_short(self, run_id: str, new: NewStep) -> StepOutcome | None:
        """The first attempt of a step this worker knows to be short, run before its
        start is committed (``Advancer._commit_activation``); None for any other."""
        if not self._runs_first(new.step.name):
            return None
        return self._attempt(run_id, new.correlation_id, new.step, new.args, new.kwargs, 1)

    def _runs_first(self, step_name: str) -> bool:
        """Whether a step's attempt runs before its start commits: known short, and
        this worker not stopping."""
        return not self._stop.is_set() and self.step_times.is_short(step_name)

    def _execute(self, ls: LocalStep) -> list[LocalStep]:
        outcome = ls.outcome or self._attempt(ls.run_id, ls.correlation_id, ls.step, ls.args,
                                              ls.kwargs, ls.attempt)
        if outcome.final:
            return self.advancer.complete_step(ls.run_id, outcome.event, ls.job_id, ls.start)
        assert outcome.retry_at is not None
        events = [outcome.event] if ls.start is None else [ls.start, outcome.event]
        try:  # the held job goes (it may be a chain's lease), the retry is a job anew
            self.append(AppendRequest(ls.run_id, events, ack=[ls.job_id], jobs=[
                NewJob("step", ls.run_id, ls.correlation_id, due_at=outcome.retry_at)]))
            self._note_future_job(outcome.retry_at)
        except EntityConflictError:
            self.world.ack(self.id, [ls.job_id])
        return []

    def _run_claimed_step(self, job: Job) -> list[LocalStep]:
        if job.correlation_id is None:
            self._take_over_chain(job)
            return []
        run_id, cid = job.run_id, job.correlation_id
        record = self.world.get_step(run_id, cid)
        step = get_step(record.name) if record is not None else None
        if record is None or record.status in STEP_TERMINAL or step is None:
            if record is not None and step is None and record.status not in STEP_TERMINAL:
                logger.warning("step %r is not registered in this worker; run %s",
                               record.name, run_id)
                self.world.release(self.id, [job.id])
                return []
            self.world.ack(self.id, [job.id])
            return []
        attempt = record.attempt + 1
        args, kwargs = self.inputs.args(run_id, cid)
        start = NewEvent("step_started", cid, {"attempt": attempt}, time.time())
        ls = LocalStep(run_id, cid, step, tuple(args), kwargs, job.id, attempt, start=start)
        if not self._runs_first(step.name):
            # Committed first, so that an attempt that kills the worker is counted.
            try:
                self.append(AppendRequest(run_id, [start]))
            except EntityConflictError:  # the run ended or the step finished meanwhile
                self.world.ack(self.id, [job.id])
                return []
            ls.start = None
        # A step known to be short runs first; its start commits with its outcome, as
        # an activation's short step does (Advancer._commit_activation): its input is
        # durable already, only its step_started is later.
        return self._execute(ls)

    def _take_over_chain(self, job: Job) -> None:
        """A step job without a step is the lease of a sequential chain another
        worker ran (Postgres, migration 0017): it names none of the chain's steps, so
        the run's unfinished steps are enqueued again, as the recovery sweep would
        once the lease is gone, and the lease is acknowledged after them."""
        run = self.world.get_run(job.run_id)
        if run is not None and run.status not in RUN_TERMINAL:
            _recovery.requeue(self.world, job.run_id)
        self.world.ack(self.id, [job.id])

    # == background =========================================================
    def _recovery_loop(self) -> None:
        while not self._stop.is_set():
            try:
                count = _recovery.sweep(self.world)
                if count:
                    logger.info("recovery re-enqueued %d runs", count)
            except Exception:  # noqa: BLE001 - try again next round
                logger.warning("recovery sweep failed", exc_info=True)
            if self._stop.wait(self.recovery_interval):
                return

    def _check_cancelled(self) -> None:
        for run_id in self.running.run_ids():
            run = self.world.get_run(run_id)
            if run is not None and run.status == "cancelled":
                self.running.cancel_run(run_id)
