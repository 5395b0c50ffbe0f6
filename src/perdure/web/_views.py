"""Runs, steps, events, waits, hooks and streams as plain JSON data.

One shape for everything that shows runs: the HTTP API returns these dicts, the
CLI prints them (``--json``) or tabulates them, and the web UI draws them.

Values (inputs, outputs, hook payloads, event data) are shown as they are stored:
JSON, with perdure's tagged types (``{"__t": "bytes", "v": ...}``) left as tags,
so nothing is lost and nothing needs the workflow's code to be read.
Times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from .._durations import to_seconds
from ..errors import RunNotFoundError
from ..world import (
    RUN_TERMINAL,
    Event,
    HookRecord,
    RunRecord,
    StepRecord,
    StreamInfo,
    WaitRecord,
    World,
)

RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL_EVENTS = ("run_completed", "run_failed", "run_cancelled")
MAX_LIMIT = 1000
MAX_INDEX = 2**62  # seqs and chunk indexes fit a signed 64-bit column with room to spare
LATEST_TIME = 253402300799.0  # 9999-12-31T23:59:59Z: later bounds mean "no bound"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat().replace("+00:00", "Z")


_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def parse_time(text: str, *, now: float | None = None) -> float:
    """Epoch seconds from ``2025-01-31``, ``2025-01-31T12:00:00Z``, an epoch number,
    or a duration ago (``90s``, ``15m``, ``1h``, ``2d``, ``1h30m``), clamped to years
    1970..9999 so any database can compare it."""
    return min(max(_parse_time(text, now), 0.0), LATEST_TIME)


def _parse_time(text: str, now: float | None) -> float:
    value = text.strip()
    if not value:
        raise ValueError("empty time")
    if _NUMBER.match(value):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"cannot read time {text!r}")
        return number
    try:
        seconds = to_seconds(value)
    except (ValueError, TypeError):
        pass
    else:
        now = dt.datetime.now(dt.UTC).timestamp() if now is None else now
        return now - seconds
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    except (ValueError, OverflowError):
        raise ValueError(
            f"cannot read time {text!r}: use ISO 8601 (2025-01-31T12:00:00Z) "
            "or a duration ago (30s, 15m, 1h, 2d)"
        ) from None


def check_text(value: str, what: str) -> str:
    """Refuse what no database can store in a key (NUL, lone surrogates) before it
    reaches one."""
    if "\x00" in value:
        raise ValueError(f"{what} cannot contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode") from None
    return value


def check_hook_cursor(cursor: str) -> None:
    """A hooks cursor is ``[run id, seq]`` as JSON (what the backends hand out);
    refuse anything else before it reaches a database."""
    try:
        run_id, seq = json.loads(cursor)
    except (ValueError, TypeError):
        raise ValueError(f"bad cursor {cursor!r}") from None
    if not isinstance(run_id, str) or "\x00" in run_id or type(seq) is not int \
            or not 0 <= seq < MAX_INDEX:
        raise ValueError(f"bad cursor {cursor!r}")


# -- records -------------------------------------------------------------------------
def run_summary(r: RunRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "workflow": r.workflow_name,
        "status": r.status,
        "idempotency_key": r.idempotency_key,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
        "started_at": iso(r.started_at),
        "completed_at": iso(r.completed_at),
        "duration_seconds": _duration(r),
    }


def _duration(r: RunRecord) -> float | None:
    if r.completed_at is None:
        return None
    return round(r.completed_at - (r.started_at or r.created_at), 6)


def event_view(e: Event) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "type": e.event_type,
        "correlation_id": e.correlation_id,
        "data": e.data,
        "created_at": iso(e.created_at),
    }


def wait_view(w: WaitRecord) -> dict[str, Any]:
    return {
        "correlation_id": w.correlation_id,
        "status": w.status,
        "resume_at": iso(w.resume_at),
        "created_at": iso(w.created_at),
        "completed_at": iso(w.completed_at),
    }


def hook_view(h: HookRecord, received: int | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "run_id": h.run_id,
        "correlation_id": h.correlation_id,
        "token": h.token,
        "status": h.status,
        "is_webhook": h.is_webhook,
        "created_at": iso(h.created_at),
        "disposed_at": iso(h.disposed_at),
    }
    if received is not None:
        view["received"] = received
    return view


def stream_view(s: StreamInfo) -> dict[str, Any]:
    return {"name": s.stream, "chunks": s.chunks, "closed": s.closed}


def step_view(s: StepRecord, events: list[Event]) -> dict[str, Any]:
    """A step with its outcome and one entry per attempt, from the step's own events."""
    attempts: list[dict[str, Any]] = []
    output: Any = None
    error: Any = None
    for e in events:
        data = e.data or {}
        if e.event_type == "step_started":
            attempts.append({"attempt": len(attempts) + 1, "status": "running",
                             "started_at": iso(e.created_at), "ended_at": None, "error": None})
        elif e.event_type in ("step_retrying", "step_completed", "step_failed"):
            status = {"step_retrying": "retrying", "step_completed": "completed",
                      "step_failed": "failed"}[e.event_type]
            if not attempts or attempts[-1]["ended_at"] is not None:
                attempts.append({"attempt": len(attempts) + 1, "status": status,
                                 "started_at": None, "ended_at": None, "error": None})
            attempts[-1].update(status=status, ended_at=iso(e.created_at),
                                error=data.get("error"))
            if e.event_type == "step_completed":
                output = data.get("output")
            elif e.event_type == "step_failed":
                error = data.get("error")
            else:
                attempts[-1]["retry_after"] = iso(data.get("retry_after"))
    return {
        "correlation_id": s.correlation_id,
        "name": s.name,
        "status": s.status,
        "attempt": s.attempt,
        "created_at": iso(s.created_at),
        "started_at": iso(s.started_at),
        "completed_at": iso(s.completed_at),
        "retry_after": iso(s.retry_after),
        "output": output,
        "error": error,
        "attempts": attempts,
    }


# -- reads ---------------------------------------------------------------------------
def get_run_record(world: World, run_id: str) -> RunRecord:
    check_text(run_id, "a run id")
    record = world.get_run(run_id)
    if record is None:
        raise RunNotFoundError(f"no run {run_id}")
    return record


def list_runs(world: World, *, status: str | None = None, workflow: str | None = None,
              since: float | None = None, until: float | None = None, limit: int = 50,
              cursor: str | None = None) -> dict[str, Any]:
    if status is not None and status not in RUN_STATUSES:
        raise ValueError(f"unknown status {status!r}: one of {', '.join(RUN_STATUSES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    for value, what in ((workflow, "a workflow name"), (cursor, "a cursor")):
        if value is not None:
            check_text(value, what)
    page = world.list_runs(status=status, workflow=workflow, created_after=since,
                           created_before=until, limit=limit, cursor=cursor)
    return {"runs": [run_summary(r) for r in page.items], "next_cursor": page.next_cursor}


def list_events(world: World, run_id: str, *, after_seq: int = 0,
                limit: int | None = None) -> dict[str, Any]:
    get_run_record(world, run_id)
    if after_seq < 0:
        raise ValueError("after_seq cannot be negative")
    if limit is not None and not 1 <= limit <= 10 * MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {10 * MAX_LIMIT}")
    events = world.list_events(run_id, after_seq=after_seq, limit=limit)
    return {"events": [event_view(e) for e in events]}


def _events_by_correlation(events: list[Event]) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = {}
    for e in events:
        if e.correlation_id is not None:
            found.setdefault(e.correlation_id, []).append(e)
    return found


def list_steps(world: World, run_id: str) -> dict[str, Any]:
    get_run_record(world, run_id)
    by_cid = _events_by_correlation(world.list_events(run_id))
    steps = world.list_steps(run_id, limit=1_000_000).items
    return {"steps": [step_view(s, by_cid.get(s.correlation_id, [])) for s in steps]}


def run_detail(world: World, run_id: str) -> dict[str, Any]:
    """Everything about one run: status, timings, input, outcome, steps with their
    attempts, waits, hooks and streams."""
    record = get_run_record(world, run_id)
    events = world.list_events(run_id)
    by_cid = _events_by_correlation(events)
    created = next((e for e in events if e.event_type == "run_created"), None)
    ended = next((e for e in reversed(events) if e.event_type in TERMINAL_EVENTS), None)
    end_data = (ended.data or {}) if ended is not None else {}
    view = run_summary(record)
    view.update(
        input=(created.data or {}).get("input") if created is not None else None,
        output=end_data.get("output") if record.status == "completed" else None,
        error=end_data.get("error") if record.status == "failed" else None,
        terminal=record.status in RUN_TERMINAL,
        event_count=len(events),
        steps=[step_view(s, by_cid.get(s.correlation_id, []))
               for s in world.list_steps(run_id, limit=1_000_000).items],
        waits=[wait_view(w) for w in world.list_waits(run_id, limit=1_000_000).items],
        hooks=[hook_view(h, sum(1 for e in by_cid.get(h.correlation_id, [])
                                if e.event_type == "hook_received"))
               for h in world.list_hooks(run_id=run_id, limit=1_000_000).items],
        streams=[stream_view(s) for s in world.list_streams(run_id)],
    )
    return view
