"""The plain records the World stores and returns.

Times are epoch seconds (``float``, UTC) everywhere in the World; the public client
turns them into ``datetime``. Event ``data`` is a JSON object (a ``dict`` of JSON
values): the runtime has already turned user payloads into JSON with the tagged
serializer, so a backend only ``json.dumps``/``json.loads`` it (see ``dumps``/``loads``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

RunStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
StepStatus = Literal["pending", "running", "completed", "failed"]
WaitStatus = Literal["waiting", "completed"]
HookStatus = Literal["active", "disposed"]
JobKind = Literal["workflow", "step"]

RUN_TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
STEP_TERMINAL: frozenset[str] = frozenset({"completed", "failed"})

# Chunk kinds in a stream: raw bytes, a serialized value (JSON text, UTF-8), end of stream.
CHUNK_BYTES = 0
CHUNK_VALUE = 1
CHUNK_EOF = 2


# One encoder, made once: json.dumps with these options builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


def dumps(data: Any) -> str:
    """Compact JSON; ``ensure_ascii`` keeps lone surrogates and NULs as escapes.

    Postgres ``text`` cannot hold a NUL character, but the six characters ``\\u0000``
    are fine, so every payload survives both backends byte for byte.
    """
    return _encode(data)


def data_text(data: Any) -> str | None:
    """An event's data as stored: its JSON, or None (SQL NULL) when it has none,
    which ``loads`` reads back as None."""
    return None if data is None else _encode(data)


def loads(text: str | bytes | None) -> Any:
    if text is None:
        return None
    return json.loads(text)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. ``seq`` is assigned by the World.

    ``created_at`` may be given by the writer: the runtime stamps result events
    before it commits them, so the workflow clock it exposed while advancing is
    exactly what replay will read back.
    """

    event_type: str
    correlation_id: str | None = None
    data: dict[str, Any] | None = None
    created_at: float | None = None


@dataclass(frozen=True, slots=True)
class Event:
    run_id: str
    seq: int
    event_type: str
    correlation_id: str | None
    data: dict[str, Any] | None
    created_at: float


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    workflow_name: str
    status: RunStatus
    idempotency_key: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    completed_at: float | None
    last_seq: int          # seq of the newest event
    result_seq: int        # seq of the newest result event (see transitions.RESULT_EVENTS)
    consumed_seq: int      # the workflow has consumed every event up to here


@dataclass(frozen=True, slots=True)
class StepRecord:
    run_id: str
    correlation_id: str
    name: str
    status: StepStatus
    attempt: int           # number of step_started events so far
    created_at: float
    started_at: float | None
    completed_at: float | None
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class WaitRecord:
    run_id: str
    correlation_id: str
    status: WaitStatus
    resume_at: float
    created_at: float
    completed_at: float | None


@dataclass(frozen=True, slots=True)
class HookRecord:
    run_id: str
    correlation_id: str
    token: str
    status: HookStatus
    is_webhook: bool
    created_at: float
    disposed_at: float | None


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue.

    ``kind="workflow"``: a continuation of the run (``correlation_id`` is None). At
    most one *unclaimed* workflow job exists per run; enqueueing another keeps the
    earlier ``due_at``.
    ``kind="step"``: runs the step ``correlation_id``; one per step, enqueueing it
    again replaces its due time and claim.
    ``claimed_by``: insert it already claimed by this worker with a lease of
    ``lease_seconds`` (a worker claiming the steps it just created, no round trip).
    """

    kind: JobKind
    run_id: str
    correlation_id: str | None = None
    due_at: float | None = None  # None: now
    claimed_by: str | None = None
    lease_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: JobKind
    run_id: str
    correlation_id: str | None
    due_at: float
    claimed_by: str | None
    lease_expires_at: float | None
    attempts: int  # times claimed, this claim included


# A chunk this process just committed, handed to its readers with the wake-up.
CommittedChunk = tuple[int, int, bytes]  # (index, kind, data)


@dataclass(frozen=True, slots=True)
class Chunk:
    run_id: str
    stream: str
    index: int
    kind: int  # CHUNK_BYTES, CHUNK_VALUE or CHUNK_EOF
    data: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class StreamInfo:
    run_id: str
    stream: str
    chunks: int       # data chunks (EOF not counted)
    closed: bool


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back for the next (None: no more)."""

    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """The arguments of one ``World.append``, for ``World.append_many``."""

    run_id: str
    events: Sequence[NewEvent]
    expected_seq: int | None = None
    expected_result_seq: int | None = None
    jobs: Sequence[NewJob] = ()
    ack: Sequence[int] = ()
    consumed: bool = False
    close_streams: bool = False


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """The arguments of one ``World.create_run``, for ``World.create_runs``."""

    workflow_name: str
    input_json: str
    run_id: str
    idempotency_key: str | None = None
    created_at: float | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    events: list[Event] = field(default_factory=list)
    last_seq: int = 0
    job_ids: list[int] = field(default_factory=list)
