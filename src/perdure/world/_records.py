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
from json.encoder import (  # type: ignore[attr-defined]  # undocumented, in CPython since 2.7
    c_make_encoder,
    encode_basestring_ascii,
)
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


# The standard library's encoder with perdure's options: the reference for _encode.
_standard = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode

# What JSON escapes in an ASCII string: the control characters, the quote, the backslash.
_ESCAPED = (*map(chr, range(0x20)), '"', "\\")
_LONG = 64  # characters: below that, the scans below cost more than escaping saves


def _string(s: str) -> str:
    """A string's JSON. Why not the standard library's escaping alone: it looks at
    each character twice (to size its output, then to write it), 25 us for a 10 KB
    value here, paid twice per step of 10 KB payloads. A long ASCII string with
    nothing to escape (base64, identifiers, most text) needs only its quotes: 34
    ``in`` scans (memchr, about 0.1 us each for 10 KB) find that out in 4 us."""
    if len(s) > _LONG and s.isascii():
        for c in _ESCAPED:
            if c in s:
                return encode_basestring_ascii(s)
        return '"' + s + '"'
    return encode_basestring_ascii(s)


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode(data: Any) -> str:
    """``_standard(data)``, character for character, with ``_string`` for strings.
    The C encoder is built per call, as ``JSONEncoder.encode`` does, for its table
    of the containers being encoded (circular references), without that method's
    Python around it (a step's small data: 1.27 us against 1.56)."""
    if c_make_encoder is None:  # pragma: no cover - a Python without the _json module
        return _standard(data)
    encoder = c_make_encoder({}, _not_json, _string, None, ":", ",", False, False, False)
    return "".join(encoder(data, 0))


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
