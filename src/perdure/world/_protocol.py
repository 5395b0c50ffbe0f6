"""The World: the storage contract the runtime speaks.

Three parts, one interface:

1. the event log and its projections (runs, steps, waits, hooks);
2. the job queue (leases, acknowledgement after the work commits, reclaim);
3. streams (dense per-stream chunk index, EOF) plus wake-up notifications.

A backend implements this with SQL and nothing else: which event is legal when is
the table in ``_transitions.py``; which fields of an event's data feed a projection
is listed below. The conformance suite (``tests/conformance``) runs every method
against every backend.

Projection fields read from event data (everything else in ``data`` is stored only
in the log):

==============  ===========================================================
step_created    ``data["name"]`` -> ``steps.name``
step_started    ``steps.attempt += 1``; ``started_at`` set on the first start
step_retrying   ``data["retry_after"]`` (epoch s) -> ``steps.retry_after``
wait_created    ``data["resume_at"]`` (epoch s) -> ``waits.resume_at``
hook_created    ``data["token"]`` -> ``hooks.token``; ``data.get("webhook")``
                -> ``hooks.is_webhook``. A token held by another *active* hook
                is refused with ``HookTokenConflictError``.
run_*           ``runs.status``, ``started_at`` (run_started),
                ``completed_at`` (terminal events)
==============  ===========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from ._records import (
    AppendRequest,
    AppendResult,
    Chunk,
    CommittedChunk,
    CreateRequest,
    Event,
    HookRecord,
    Job,
    JobKind,
    NewEvent,
    NewJob,
    Page,
    RunRecord,
    StepRecord,
    StreamInfo,
    WaitRecord,
)


class Subscription(Protocol):
    """A wake-up flag for one key. Level-triggered: a notification that arrives
    between two waits is not lost; ``wait`` returns at once and clears it."""

    def wait(self, timeout: float | None) -> bool:
        """Block until notified or ``timeout``; True when notified."""
        ...

    async def wait_async(self, timeout: float | None) -> bool: ...

    def set(self, chunks: Sequence[CommittedChunk] | None = None) -> None:
        """Wake this subscription from this process (as a notification would).
        ``chunks``: a stream's chunks this process has just committed."""
        ...

    def take(self) -> tuple[list[CommittedChunk], bool]:
        """The chunks handed over since the last ``take``, and whether some wake-up
        came without them (another process's write, a reconnect): then only a query
        of the table tells what is new."""
        ...

    def close(self) -> None: ...


class Notifier(Protocol):
    """Wake-ups. Keys: ``jobs`` (a job became claimable), ``run:<id>`` (a run
    ended or was cancelled), ``stream:<run id>:<name>`` (a chunk or EOF was
    written). A wake-up carries no data (whoever wakes re-reads the tables), but
    for one: a stream's chunks committed by this process come with their wake-up,
    so a reader here need not read back what its own process just wrote."""

    def subscribe(self, key: str) -> Subscription: ...

    def subscribe_local(self, key: str) -> Subscription:
        """A subscription woken only by this process's own wake-ups (no LISTEN on
        Postgres): for a waiter whose wake-up this process publishes itself, such as
        the end of a run that this process's worker is executing."""
        ...

    def publish(self, key: str) -> None:
        """Wake this process's subscriptions of ``key`` (no other process hears it)."""
        ...

    def wake_all(self) -> None:
        """Set every subscription, as after a reconnect that may have missed some."""
        ...

    def watch(self, prefix: str, fn: Callable[[str], None]) -> Callable[[], None]:
        """Call ``fn(key)`` (on the notifying thread, briefly) for each wake-up whose
        key starts with ``prefix``, for as long as this process hears them; returns
        the function that stops it. Only a hint: a wake-up may be missed."""
        ...


@runtime_checkable
class World(Protocol):
    url: str

    @property
    def notifier(self) -> Notifier:
        """Wake-ups for this World's readers, waiters and workers."""
        ...

    # -- lifecycle -------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending migrations (safe to call from many processes at once).
        Returns the schema version."""
        ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called; readers stop instead of retrying."""
        ...

    def register_workflows(self, names: Sequence[str]) -> None:
        """Record workflow names a deployment can run (for the SQL start API)."""
        ...

    def registered_workflows(self) -> list[str]:
        """Every workflow name any deployment has registered, sorted."""
        ...

    # -- event log ---------------------------------------------------------------
    def create_run(
        self,
        workflow_name: str,
        input_json: str,
        *,
        run_id: str,
        idempotency_key: str | None = None,
        created_at: float | None = None,
    ) -> tuple[RunRecord, bool]:
        """In ONE transaction: the run row (``pending``), its ``run_created`` event
        (seq 1, data ``{"workflow": name, "input": <input_json parsed>,
        "idempotency_key": key}``) and a workflow job due now. With an
        idempotency key already used, writes nothing and returns the existing
        run and ``False``; concurrent starts with one key make exactly one run."""
        ...

    def create_runs(self, requests: Sequence[CreateRequest]) -> list[tuple[RunRecord, bool]]:
        """Several ``create_run`` in ONE transaction, one result each, in order: all
        of them or none. Requests that share an idempotency key make one run (the
        later ones get it with ``False``). For a client whose concurrent starts can
        share one commit; callers running several such batches at once order their
        keyed requests by key, so that two batches never wait on each other."""
        ...

    def create_run_claimed(
        self,
        workflow_name: str,
        input_json: str,
        *,
        run_id: str,
        worker_id: str,
        lease_seconds: float,
        idempotency_key: str | None = None,
    ) -> tuple[RunRecord, Job | None]:
        """``create_run`` for a worker that will execute the run itself: its workflow
        job is inserted already claimed by ``worker_id`` (lease ``lease_seconds``,
        attempts 1) and returned, and nothing wakes ``jobs``. The job is None when
        the idempotency key was used already (nothing written; the existing run)."""
        ...

    def create_run_started(
        self,
        workflow_name: str,
        input_json: str,
        *,
        run_id: str,
        created_at: float,
        events: Sequence[NewEvent],
        jobs: Sequence[NewJob] = (),
        close_streams: bool = False,
        idempotency_key: str | None = None,
    ) -> tuple[RunRecord, AppendResult | None]:
        """``create_run`` and the run's first ``append`` (``events`` from seq 2,
        ``jobs``, ``close_streams``, consumed) in ONE transaction, for a worker that
        activates the run it starts: no workflow job is left, the activation being
        part of the creation. ``created_at`` stamps ``run_created`` (the activation
        saw that time). Refused appends raise as ``append`` does and write nothing,
        the run included. With an idempotency key already used, nothing is written:
        the existing run and None. Returns the run as the append left it."""
        ...

    def append(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        *,
        expected_seq: int | None = None,
        expected_result_seq: int | None = None,
        jobs: Sequence[NewJob] = (),
        ack: Sequence[int] = (),
        consumed: bool = False,
        close_streams: bool = False,
    ) -> AppendResult:
        """Append ``events`` in order, in ONE transaction that first locks the run row.

        Each event is checked against ``TRANSITIONS`` as the batch applies (so a
        batch may create a step and start it). Any illegal event, an unknown run,
        or a guard that fails raises and writes nothing:

        - ``EntityConflictError``: illegal transition, duplicate creation event,
          event after the run's terminal event, unknown entity;
        - ``StaleStateError``: ``expected_seq`` given and not ``runs.last_seq``, or
          ``expected_result_seq`` given and not ``runs.result_seq``;
        - ``RunNotFoundError``: no such run.

        In the same transaction: insert ``jobs``, delete the jobs in ``ack``
        (a job already gone is fine; a backend may instead keep the row of an acked
        step job that the same worker holds as the job of a step it claims in this
        call, keeping the id, and then may clear its correlation id: such a job is
        a sequential chain's lease, which a worker that claims it takes over by
        re-enqueueing the run's unfinished steps), set ``consumed_seq`` to the new
        last seq when ``consumed``, and write EOF to every open stream of the run when
        ``close_streams``. Wakes ``run:<id>`` when the batch ends the run and
        ``jobs`` when it enqueues an unclaimed job due now.
        """
        ...

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Several ``append`` in ONE transaction, in the order given, one result
        each: all of them or none. The first refusal raises as ``append`` would and
        nothing of any request is written. Appends to one run see the ones before
        them in the list. Callers running several batches at once order them by run
        id, so that two batches never wait on each other's run locks."""
        ...

    def create_event(self, run_id: str, event: NewEvent) -> Event:
        """``append`` of one event; returns it with its seq."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def get_run_by_key(self, idempotency_key: str) -> RunRecord | None: ...

    def read_ends(self, run_ids: Sequence[str]) -> dict[str, Event]:
        """The terminal event of each of these runs that has ended, in one read (a
        run's terminal event is always its last)."""
        ...

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[RunRecord]:
        """Newest first (by id, which is time-ordered)."""
        ...

    def list_events(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        limit: int | None = None,
        types: Sequence[str] | None = None,
    ) -> list[Event]:
        """Events with ``seq > after_seq`` in seq order."""
        ...

    def list_steps(
        self, run_id: str, *, status: str | None = None, limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[StepRecord]:
        """In creation order."""
        ...

    def get_step(self, run_id: str, correlation_id: str) -> StepRecord | None: ...

    def list_waits(
        self, run_id: str, *, status: str | None = None, limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[WaitRecord]: ...

    def list_hooks(
        self, *, run_id: str | None = None, status: str | None = None, limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[HookRecord]: ...

    def get_hook_by_token(self, token: str) -> HookRecord | None:
        """The *active* hook holding ``token``, if any."""
        ...

    # -- job queue -----------------------------------------------------------------
    def enqueue(self, jobs: Sequence[NewJob]) -> list[int]: ...

    def claim(
        self,
        worker_id: str,
        *,
        limit: int,
        lease_seconds: float,
        kinds: Sequence[JobKind] = ("workflow", "step"),
    ) -> list[Job]:
        """Claim up to ``limit`` due jobs that are unclaimed or whose lease expired
        (Postgres: ``FOR UPDATE SKIP LOCKED``; SQLite: ``BEGIN IMMEDIATE``).
        Never hands out a workflow job while another workflow job of the same run
        holds a live lease. Oldest due first."""
        ...

    def claim_with_logs(
        self, worker_id: str, *, limit: int, lease_seconds: float, log_limit: int,
    ) -> tuple[list[Job], dict[str, list[Event]]]:
        """``claim`` of workflow and step jobs, and in the same round trip the first
        ``log_limit`` events (in seq order) of the run of each workflow job claimed:
        a worker then activates the runs it claimed without reading their logs one
        by one. A run with ``log_limit`` events may have more (``list_events``)."""
        ...

    def extend_leases(
        self, worker_id: str, job_ids: Sequence[int], lease_seconds: float
    ) -> list[int]:
        """Renew leases still held by ``worker_id``; returns the ids renewed."""
        ...

    def ack(self, worker_id: str, job_ids: Sequence[int]) -> None:
        """Delete finished jobs (only call after the job's work committed)."""
        ...

    def release(self, worker_id: str, job_ids: Sequence[int]) -> None:
        """Give jobs back unclaimed (graceful shutdown), claimable again at once."""
        ...

    def list_jobs(self, *, run_id: str | None = None) -> list[Job]: ...

    def tidy_queue(self) -> None:
        """Reclaim what acknowledged jobs leave behind, so claims stay cheap: on
        Postgres a deleted job stays in the queue's indexes until a vacuum, and
        every claim walks past it. Cheap, and safe to call from many processes."""
        ...

    def find_stranded_runs(
        self, *, after_id: str | None, limit: int, now: float | None = None
    ) -> list[str]:
        """Ids (ascending, > ``after_id``) of pending or running runs that have no
        job with a live lease or due unclaimed, and have runnable work: status
        pending, a step not terminal, a waiting wait with ``resume_at <= now``, or
        ``consumed_seq < result_seq``. Runs parked only on hooks without payloads
        or on future timers are not returned."""
        ...

    # -- streams -------------------------------------------------------------------
    def write_chunks(self, run_id: str, stream: str, chunks: Sequence[tuple[int, bytes]]) -> int:
        """Append chunks ``(kind, data)`` at the next dense indexes (from 0) in one
        transaction; returns the index of the last one. Refused with
        ``EntityConflictError`` once the stream is closed. Wakes
        ``stream:<run>:<name>``."""
        ...

    def close_stream(self, run_id: str, stream: str) -> None:
        """Write the EOF chunk (idempotent)."""
        ...

    def read_chunks(
        self, run_id: str, stream: str, *, start: int, limit: int = 1000
    ) -> list[Chunk]:
        """Chunks with ``index >= start`` in order, the EOF chunk included."""
        ...

    def stream_info(self, run_id: str, stream: str) -> StreamInfo: ...

    def list_streams(self, run_id: str) -> list[StreamInfo]: ...
