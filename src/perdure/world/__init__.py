"""Layer 3: the storage contract (World) and its records. See ``_protocol.py``."""

from ._ids import new_token, uuid7
from ._protocol import Notifier, Subscription, World
from ._records import (
    CHUNK_BYTES,
    CHUNK_EOF,
    CHUNK_VALUE,
    RUN_TERMINAL,
    STEP_TERMINAL,
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
    RunStatus,
    StepRecord,
    StreamInfo,
    WaitRecord,
    data_text,
    dumps,
    loads,
)
from ._transitions import (
    CREATION_EVENTS,
    EVENT_TYPES,
    RESULT_EVENTS,
    RUN_TERMINAL_EVENTS,
    STATUSES,
    TRANSITIONS,
    Transition,
    is_legal,
)

__all__ = [
    "CHUNK_BYTES", "CHUNK_EOF", "CHUNK_VALUE", "CREATION_EVENTS", "EVENT_TYPES",
    "RESULT_EVENTS", "RUN_TERMINAL", "RUN_TERMINAL_EVENTS", "STATUSES", "STEP_TERMINAL",
    "TRANSITIONS", "AppendRequest", "AppendResult", "Chunk", "CommittedChunk", "CreateRequest",
    "Event", "HookRecord", "Job", "JobKind",
    "NewEvent", "NewJob", "Notifier", "Page", "RunRecord", "RunStatus", "StepRecord",
    "StreamInfo", "Subscription", "Transition", "WaitRecord", "World", "data_text", "dumps",
    "is_legal", "loads", "new_token", "uuid7",
]
