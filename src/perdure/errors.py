"""Every error perdure raises on purpose.

All of them derive from :class:`PerdureError`, so ``except perdure.errors.PerdureError``
catches exactly perdure's own failures and nothing from user code.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CorruptedEventLogError",
    "EntityConflictError",
    "FatalError",
    "HookNotFoundError",
    "HookTokenConflictError",
    "NonDeterminismError",
    "PayloadTooLargeError",
    "PerdureError",
    "RetryableError",
    "RunCancelledError",
    "RunFailedError",
    "RunNotFoundError",
    "SerializationError",
    "StaleStateError",
    "WorkflowNotFoundError",
]


class PerdureError(Exception):
    """Base class of perdure's own errors."""


class SerializationError(PerdureError, TypeError):
    """A value cannot be stored: it is not JSON or one of the tagged types.

    Raised at the call site, before anything is written.
    """


class PayloadTooLargeError(SerializationError):
    """A serialized payload is over the configured size limit."""


class EntityConflictError(PerdureError):
    """An event was refused because it is not a legal transition.

    Examples: ``step_started`` for a completed step, any event for a finished run,
    a second ``step_created`` for the same correlation id. Nothing was written.
    """


class HookTokenConflictError(EntityConflictError):
    """A hook token is already held by another live hook."""

    def __init__(self, token: str) -> None:
        super().__init__(f"hook token {token!r} is already in use by a live hook")
        self.token = token


class StaleStateError(EntityConflictError):
    """An optimistic write found the run's log moved on since the writer read it.

    The runtime answers by catching up with the log; it never reaches users.
    """


class RunNotFoundError(PerdureError, LookupError):
    """No run has this id."""


class HookNotFoundError(PerdureError, LookupError):
    """No live hook has this token."""


class WorkflowNotFoundError(PerdureError, LookupError):
    """No workflow is registered under this name."""


class CorruptedEventLogError(PerdureError):
    """The stored log cannot be replayed: an event nothing consumes, or one after the end."""


class NonDeterminismError(PerdureError):
    """The workflow code asked for something other than what its log recorded."""


class RunFailedError(PerdureError):
    """The run ended ``failed``; ``error`` holds the recorded error (type, message, traceback)."""

    def __init__(self, message: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = error or {}


class RunCancelledError(PerdureError):
    """The run ended ``cancelled``."""


class FatalError(Exception):
    """Raised by a step to fail at once: it is never retried."""


class RetryableError(Exception):
    """Raised by a step to be retried after ``retry_after`` seconds (default: the backoff)."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
