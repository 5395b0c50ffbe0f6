"""perdure: durable workflows for Python on PostgreSQL and SQLite.

Write a workflow as a plain ``async def`` made of steps; every step result, timer,
hook payload and stream chunk is recorded in an append-only event log, and a run
resumes by deterministic replay after any crash, restart or deploy.
"""

from . import errors
from ._context import StepContext
from ._context import current_step as _current_step
from ._decorators import StepFunction, WorkflowFunction, step, workflow
from ._engine import Engine
from ._primitives import (
    Hook,
    StreamWriter,
    create_hook,
    create_webhook,
    get_writable,
    now,
    random,
    sleep,
    uuid4,
)
from ._run import Event, Run, RunList, StepInfo
from .errors import (
    CorruptedEventLogError,
    EntityConflictError,
    FatalError,
    HookNotFoundError,
    NonDeterminismError,
    RetryableError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
    SerializationError,
    WorkflowNotFoundError,
)


def current_step() -> StepContext | None:
    """Inside a step: its run id, correlation id, name and ``attempt`` (1-based)."""
    return _current_step()


__version__ = "0.1.0"

__all__ = [
    "CorruptedEventLogError", "Engine", "EntityConflictError", "Event", "FatalError", "Hook",
    "HookNotFoundError", "NonDeterminismError", "RetryableError", "Run", "RunCancelledError",
    "RunFailedError", "RunList", "RunNotFoundError", "SerializationError", "StepContext",
    "StepFunction", "StepInfo", "StreamWriter", "WorkflowFunction", "WorkflowNotFoundError",
    "create_hook", "create_webhook", "current_step", "errors", "get_writable", "now", "random",
    "sleep", "step", "uuid4", "workflow",
]
