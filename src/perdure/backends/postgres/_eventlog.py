"""The event log and its projections (runs, steps, waits, hooks).

Every write is one call of a SQL function (``perdure.append_events``,
``perdure.create_run``): one round trip, one transaction that locks the run row
first, validates each event against ``TRANSITIONS`` and writes events, entities,
jobs, acks, stream EOFs and NOTIFYs together. Python only flattens the batch into
parallel arrays and reads the projection fields out of each event's data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from ...world import (
    EVENT_TYPES,
    RUN_TERMINAL_EVENTS,
    AppendRequest,
    AppendResult,
    CreateRequest,
    Event,
    HookRecord,
    Job,
    NewEvent,
    NewJob,
    Page,
    RunRecord,
    StepRecord,
    WaitRecord,
    data_text,
)
from . import _convert
from ._arrays import bool_array, number_array, text_array
from ._base import PostgresBase
from ._db import Q, Retry

Params = list[Any]


def _field(data: dict[str, Any] | None, key: str, event_type: str) -> Any:
    if not data or data.get(key) is None:
        raise ValueError(f"{event_type} needs data[{key!r}]")
    return data[key]


def append_params(r: AppendRequest) -> Params:
    """The arguments of ``perdure.append_events`` (see its definition)."""
    return [
        r.run_id, *event_arrays(r.events), r.expected_seq, r.expected_result_seq,
        *job_arrays(r.jobs), number_array(r.ack) if r.ack else None, r.consumed,
        r.close_streams,
    ]


def claimed_step_params(run_id: str, created: NewEvent, started: NewEvent,
                        job: NewJob) -> Params | None:
    """The step arguments of the straight-line functions that create a step and
    start it for its creator (``append_next_step``, ``create_run_first_step``): its
    id, name, two events' data and times, claimer and lease; None unless the two
    events create and start one step and ``job`` is its, claimed and due at once."""
    cid = created.correlation_id
    if (created.event_type != "step_created" or started.event_type != "step_started"
            or cid is None or started.correlation_id != cid or job.kind != "step"
            or job.run_id != run_id or job.correlation_id != cid or job.claimed_by is None
            or job.due_at is not None):
        return None
    name = str(_field(created.data, "name", "step_created"))
    return [cid, name, data_text(created.data), data_text(started.data), created.created_at,
            started.created_at, job.claimed_by, float(job.lease_seconds)]


def next_step_params(r: AppendRequest) -> Params | None:
    """The arguments of ``perdure.append_next_step`` when the batch is a sequential
    step's end and its successor, created and started by the worker acking the
    ended step's job (the common append); None for any other batch."""
    events, jobs, ack = r.events, r.jobs, r.ack
    if r.close_streams or len(events) != 3 or len(jobs) != 1 or len(ack) != 1:
        return None
    done, created, started = events
    if done.event_type not in ("step_completed", "step_failed") or done.correlation_id is None:
        return None
    step = claimed_step_params(r.run_id, created, started, jobs[0])
    if step is None:
        return None
    return [
        r.run_id, r.expected_seq, r.expected_result_seq,
        done.event_type, done.correlation_id, data_text(done.data), done.created_at,
        *step, ack[0], r.consumed,
    ]


def last_step_params(r: AppendRequest) -> Params | None:
    """The arguments of ``perdure.append_last_step`` when the batch ends a run as its
    last step ends (the step's job acked, nothing enqueued); None for any other."""
    events = r.events
    if r.jobs or len(events) != 2 or len(r.ack) != 1:
        return None
    done, end = events
    if (done.event_type not in ("step_completed", "step_failed") or done.correlation_id is None
            or end.event_type not in ("run_completed", "run_failed")
            or end.correlation_id is not None):
        return None
    return [
        r.run_id, r.expected_seq, r.expected_result_seq,
        done.event_type, done.correlation_id, data_text(done.data), done.created_at,
        end.event_type, data_text(end.data), end.created_at, r.ack[0], r.consumed,
        r.close_streams,
    ]


def one_step_run_params(r: AppendRequest) -> Params | None:
    """The arguments of ``perdure.append_one_step_run`` when the batch is a whole
    run: started, one step created, started and ended, the run ended, its job
    acked, nothing enqueued; None for any other batch."""
    events = r.events
    if r.jobs or len(events) != 5 or len(r.ack) != 1:
        return None
    cid = events[1].correlation_id  # the step the batch creates, starts and ends
    if ([e.event_type for e in events[:3]] != ["run_started", "step_created", "step_started"]
            or events[3].event_type not in ("step_completed", "step_failed")
            or events[4].event_type not in ("run_completed", "run_failed")
            or cid is None or events[2].correlation_id != cid
            or events[3].correlation_id != cid):
        return None
    types, cids, datas, times = event_arrays(events)[:4]
    name = str(_field(events[1].data, "name", "step_created"))
    return [r.run_id, r.expected_seq, r.expected_result_seq, types, cids, datas, times,
            name, r.ack[0], r.consumed, r.close_streams]


def append_call(r: AppendRequest) -> tuple[str, Params]:
    """The function an append calls: one of its own for the three commonest
    batches (a sequential step's end and successor, a run's last step and end, a
    whole one-step run), else the general one."""
    params = next_step_params(r)
    if params is not None:
        return "append_next_step", params
    params = last_step_params(r)
    if params is not None:
        return "append_last_step", params
    params = one_step_run_params(r)
    if params is not None:
        return "append_one_step_run", params
    return "append_events", append_params(r)


def first_step_params(run_id: str, events: Sequence[NewEvent], jobs: Sequence[NewJob],
                      close_streams: bool) -> Params | None:
    """The arguments of ``perdure.create_run_first_step`` after the run's own five
    when a local start's batch is the run started with its first step, created
    and started by the starting worker (the commonest start); None for any other."""
    if close_streams or len(events) != 3 or len(jobs) != 1:
        return None
    begun, created, started = events
    if begun.event_type != "run_started":
        return None
    step = claimed_step_params(run_id, created, started, jobs[0])
    if step is None:
        return None
    return [data_text(begun.data), begun.created_at, *step]


def ended_start_params(events: Sequence[NewEvent], jobs: Sequence[NewJob]) -> Params | None:
    """The arguments of ``perdure.create_run_ended`` after the run's own five when a
    local start's batch starts and ends the run (nothing enqueued); None for any
    other."""
    if jobs or len(events) != 2:
        return None
    begun, end = events
    if (begun.event_type != "run_started" or end.event_type not in ("run_completed", "run_failed")
            or begun.correlation_id is not None or end.correlation_id is not None):
        return None
    return [data_text(begun.data), begun.created_at, end.event_type, data_text(end.data),
            end.created_at]


def start_call(run_id: str, events: Sequence[NewEvent], jobs: Sequence[NewJob],
               close_streams: bool) -> tuple[str, Params]:
    """The function a local start calls after the run's own arguments: one of its own
    for the two commonest first activations (the first step, the whole run), else
    ``create_run_started``."""
    params = first_step_params(run_id, events, jobs, close_streams)
    if params is not None:
        return "create_run_first_step", params
    params = ended_start_params(events, jobs)
    if params is not None:
        return "create_run_ended", params
    return "create_run_started", [*event_arrays(events), *job_arrays(jobs), close_streams]


def append_many_params(requests: Sequence[AppendRequest]) -> Params:
    """The arguments of ``perdure.append_many``: per-request values one element
    each, the events, jobs and acks of all requests concatenated, with their counts."""
    events = [e for r in requests for e in r.events]
    jobs = [j for r in requests for j in r.jobs]
    acks = [a for r in requests for a in r.ack]
    return [
        text_array([r.run_id for r in requests]),
        number_array([len(r.events) for r in requests]),
        *event_arrays(events),
        number_array([r.expected_seq for r in requests]),
        number_array([r.expected_result_seq for r in requests]),
        number_array([len(r.jobs) for r in requests]),
        *job_arrays(jobs),
        number_array([len(r.ack) for r in requests]),
        number_array(acks) if acks else None,
        bool_array([r.consumed for r in requests]),
        bool_array([r.close_streams for r in requests]),
    ]


def event_arrays(events: Sequence[NewEvent]) -> Params:
    """types, correlation ids, data, times, then the projection fields one array
    each: step names, hook tokens, webhook flags, resume times, retry times."""
    n = len(events)
    types: list[str] = []
    cids: list[str | None] = []
    datas: list[str | None] = []
    times: list[float | None] = []
    # Projection fields, one array each, only sent when an event needs it.
    names: list[str | None] | None = None
    tokens: list[str | None] | None = None
    webhooks: list[bool | None] | None = None
    resume_at: list[float | None] | None = None
    retry_after: list[float | None] | None = None
    for i, ev in enumerate(events):
        kind = ev.event_type
        if kind not in EVENT_TYPES:
            raise ValueError(f"unknown event type {kind!r}")
        data = ev.data
        types.append(kind)
        cids.append(ev.correlation_id)
        datas.append(data_text(data))
        times.append(ev.created_at)
        if kind == "step_created":
            names = names or [None] * n
            names[i] = str(_field(data, "name", kind))
        elif kind == "step_retrying":
            value = (data or {}).get("retry_after")
            if value is not None:
                retry_after = retry_after or [None] * n
                retry_after[i] = float(value)
        elif kind == "wait_created":
            resume_at = resume_at or [None] * n
            resume_at[i] = float(_field(data, "resume_at", kind))
        elif kind == "hook_created":
            tokens = tokens or [None] * n
            webhooks = webhooks or [None] * n
            tokens[i] = str(_field(data, "token", kind))
            webhooks[i] = bool((data or {}).get("webhook"))
    return [
        text_array(types), text_array(cids), datas, number_array(times),
        text_array(names), text_array(tokens), bool_array(webhooks), number_array(resume_at),
        number_array(retry_after),
    ]


def job_arrays(jobs: Sequence[NewJob]) -> Params:
    """kinds, run ids, correlation ids, due times, claimers, leases (``_insert_jobs``)."""
    if not jobs:
        return [None] * 6
    for job in jobs:
        if job.kind == "step" and job.correlation_id is None:
            raise ValueError("a step job needs the step's correlation_id")
        if job.kind not in ("workflow", "step"):
            raise ValueError(f"unknown job kind {job.kind!r}")
    return [
        text_array([j.kind for j in jobs]),
        text_array([j.run_id for j in jobs]),
        text_array([j.correlation_id for j in jobs]),
        number_array([j.due_at for j in jobs]),
        text_array([j.claimed_by for j in jobs]),
        number_array([float(j.lease_seconds) for j in jobs]),
    ]


def wakes_jobs(jobs: Sequence[NewJob], now: float) -> bool:
    return any(j.claimed_by is None and (j.due_at is None or j.due_at <= now) for j in jobs)


class EventLog(PostgresBase):
    def register_workflows(self, names: Sequence[str]) -> None:
        if names:
            self._db.run("register_workflows", (text_array(names),))

    def registered_workflows(self) -> list[str]:
        return [row[0] for row in self._db.all("registered_workflows", ())]

    def create_run(
        self,
        workflow_name: str,
        input_json: str,
        *,
        run_id: str,
        idempotency_key: str | None = None,
        created_at: float | None = None,
    ) -> tuple[RunRecord, bool]:
        params = (workflow_name, input_json, run_id, idempotency_key, created_at, None, None)
        row = self._db.one("create_run", params, retry=Retry.IF_NOT_RUN)
        assert row is not None
        created = bool(row[0])
        if created:
            self.notifier.publish("jobs")
        return _convert.run(row[2:]), created

    def create_runs(self, requests: Sequence[CreateRequest]) -> list[tuple[RunRecord, bool]]:
        if not requests:
            return []
        params = (text_array([r.workflow_name for r in requests]),
                  [r.input_json for r in requests],
                  text_array([r.run_id for r in requests]),
                  text_array([r.idempotency_key for r in requests]),
                  number_array([r.created_at for r in requests]))
        rows = self._db.all("create_runs", params, retry=Retry.IF_NOT_RUN)
        made = [(_convert.run(row[2:]), bool(row[0])) for row in _one_each(rows, requests)]
        if any(created for _, created in made):
            self.notifier.publish("jobs")
        return made

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
        params = (workflow_name, input_json, run_id, idempotency_key, None, worker_id,
                  float(lease_seconds))
        row = self._db.one("create_run", params, retry=Retry.IF_NOT_RUN)
        assert row is not None
        record = _convert.run(row[2:])
        if not row[0]:
            return record, None
        job = Job(int(row[1]), "workflow", record.id, None, record.updated_at, worker_id,
                  record.updated_at + float(lease_seconds), 1)
        return record, job

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
        run = (workflow_name, input_json, run_id, idempotency_key, created_at)
        query, batch = start_call(run_id, events, jobs, close_streams)
        row = self._db.one(query, (*run, *batch), retry=Retry.IF_NOT_RUN)
        assert row is not None
        record = _convert.run(row[5:])
        if not row[0]:
            return record, None
        return record, self._appended(run_id, events, jobs, row[1:5])

    def create_run_statement(
        self,
        workflow_name: str,
        input_json: str,
        run_id: str,
        idempotency_key: str | None = None,
    ) -> tuple[str, tuple[Any, ...]]:
        """SQL and parameters that create a run on the caller's own psycopg
        connection (sync or async), inside the caller's transaction: the same
        function as ``create_run``, so the same rows. Returns one row, the run id
        (the existing run's when the idempotency key was used already). The NOTIFY
        that wakes workers goes out when the caller commits."""
        return Q["create_run_statement"], (workflow_name, input_json, run_id, idempotency_key)

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
        request = AppendRequest(run_id, events, expected_seq, expected_result_seq, jobs, ack,
                                consumed, close_streams)
        query, params = append_call(request)
        row = self._db.one(query, params, retry=Retry.IF_NOT_RUN)
        assert row is not None
        return self._appended(run_id, events, jobs, row)

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        if not requests:
            return []
        rows = self._db.all("append_many", append_many_params(requests),
                            retry=Retry.IF_NOT_RUN)
        return [self._appended(r.run_id, r.events, r.jobs, row)
                for r, row in zip(requests, _one_each(rows, requests), strict=True)]

    def _appended(self, run_id: str, events: Sequence[NewEvent], jobs: Sequence[NewJob],
                  row: tuple[Any, ...]) -> AppendResult:
        """The written events from ``append_events``' outputs, and the wake-ups."""
        last_seq, written_at, job_ids, closed_streams = row
        first = last_seq - len(events) + 1
        result = [
            Event(run_id, first + i, ev.event_type, ev.correlation_id, ev.data,
                  written_at if ev.created_at is None else ev.created_at)
            for i, ev in enumerate(events)
        ]
        if jobs and wakes_jobs(jobs, time.time()):
            self.notifier.publish("jobs")
        if any(ev.event_type in RUN_TERMINAL_EVENTS for ev in events):
            self.notifier.publish(f"run:{run_id}")
        for stream in closed_streams or ():
            self.notifier.publish(f"stream:{run_id}:{stream}")
        return AppendResult(events=result, last_seq=last_seq, job_ids=list(job_ids))

    def create_event(self, run_id: str, event: NewEvent) -> Event:
        return self.append(run_id, [event]).events[0]

    # -- reads -------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._db.one("get_run", (run_id,))
        return None if row is None else _convert.run(row)

    def get_run_by_key(self, idempotency_key: str) -> RunRecord | None:
        row = self._db.one("get_run_by_key", (idempotency_key,))
        return None if row is None else _convert.run(row)

    def read_ends(self, run_ids: Sequence[str]) -> dict[str, Event]:
        if not run_ids:
            return {}
        rows = self._db.all("read_ends", (text_array(list(dict.fromkeys(run_ids))),))
        return {row[0]: _convert.event(row) for row in rows}

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
        params = {
            "status": status, "workflow": workflow, "created_after": created_after,
            "created_before": created_before, "cursor": cursor, "limit": limit + 1,
        }
        rows = self._db.all("list_runs", params, prepare=False)
        items = [_convert.run(row) for row in rows[:limit]]
        more = len(rows) > limit and bool(items)
        return Page(items, items[-1].id if more else None)

    def list_events(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        limit: int | None = None,
        types: Sequence[str] | None = None,
    ) -> list[Event]:
        params = {
            "run_id": run_id, "after_seq": after_seq, "limit": limit,
            "types": text_array(types),
        }
        return [_convert.event(row) for row in self._db.all("list_events", params)]

    def get_step(self, run_id: str, correlation_id: str) -> StepRecord | None:
        row = self._db.one("get_step", (run_id, correlation_id))
        return None if row is None else _convert.step(row)

    def list_steps(
        self, run_id: str, *, status: str | None = None, limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[StepRecord]:
        rows = self._seq_page("list_steps", run_id, status, limit, cursor)
        items = [_convert.step(row[1:]) for row in rows[:limit]]
        return Page(items, _seq_cursor(rows, limit))

    def list_waits(
        self, run_id: str, *, status: str | None = None, limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[WaitRecord]:
        rows = self._seq_page("list_waits", run_id, status, limit, cursor)
        items = [_convert.wait(row[1:]) for row in rows[:limit]]
        return Page(items, _seq_cursor(rows, limit))

    def list_hooks(
        self, *, run_id: str | None = None, status: str | None = None, limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[HookRecord]:
        after_run, after_seq = json.loads(cursor) if cursor else ("", 0)
        params = {
            "run_id": run_id, "status": status, "after_run": after_run,
            "after_seq": after_seq, "limit": limit + 1,
        }
        rows = self._db.all("list_hooks", params, prepare=False)
        items = [_convert.hook(row[1:]) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit and items:
            next_cursor = json.dumps([items[-1].run_id, rows[limit - 1][0]])
        return Page(items, next_cursor)

    def get_hook_by_token(self, token: str) -> HookRecord | None:
        row = self._db.one("get_hook_by_token", (token,))
        return None if row is None else _convert.hook(row)

    def _seq_page(
        self, name: str, run_id: str, status: str | None, limit: int, cursor: str | None
    ) -> list[tuple[Any, ...]]:
        params = {
            "run_id": run_id, "status": status, "after_seq": int(cursor) if cursor else 0,
            "limit": limit + 1,
        }
        return self._db.all(name, params)


def _one_each(rows: list[tuple[Any, ...]], requests: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of a batch function: one per request, in order."""
    if len(rows) != len(requests):
        raise RuntimeError(f"a batch of {len(requests)} returned {len(rows)} rows")
    return rows


def _seq_cursor(rows: list[tuple[Any, ...]], limit: int) -> str | None:
    """Rows start with the entity's creation seq; a cursor is the last one shown."""
    if len(rows) > limit and limit > 0:
        return str(rows[limit - 1][0])
    return None
