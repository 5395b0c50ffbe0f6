"""How public functions find the runtime without importing it.

Inside a workflow body the running event loop is perdure's ``WorkflowLoop``; it
carries a ``perdure_runtime`` attribute implementing :class:`WorkflowRuntime`.
Inside a step, a context variable holds the :class:`StepContext`. The programming
model (layer 1) only knows these two small interfaces; the runtime (layer 2)
provides them.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._decorators import StepFunction
    from ._primitives import Hook


class WorkflowRuntime(Protocol):
    """What a workflow body may ask of the runtime. Everything is deterministic."""

    run_id: str

    def call_step(
        self, step: StepFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...

    def create_hook(self, token: str | None, webhook: bool) -> Hook: ...

    def now(self) -> float: ...

    def random(self) -> float: ...

    def randbits(self, bits: int) -> int: ...

    def webhook_url(self, token: str) -> str: ...


@dataclass(frozen=True)
class StepContext:
    """Where a step runs: its run, its id in the run, and which attempt this is (1-based)."""

    run_id: str
    correlation_id: str
    name: str
    attempt: int
    world: Any  # the World the step's worker writes to (streams)
    max_payload_bytes: int | None = None
    # (run id, stream) -> the attempt's chunk writer (``_stream_writer.ChunkWriter``)
    writers: dict[tuple[str, str], Any] = field(default_factory=dict, compare=False)


_step_context: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "perdure_step", default=None
)


def current_runtime() -> WorkflowRuntime | None:
    """The workflow runtime when called from a workflow body, else None."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return getattr(loop, "perdure_runtime", None)


def current_step() -> StepContext | None:
    """The step being run, when called from inside a step (else None)."""
    return _step_context.get()


def set_step_context(ctx: StepContext | None) -> contextvars.Token[StepContext | None]:
    return _step_context.set(ctx)


def reset_step_context(token: contextvars.Token[StepContext | None]) -> None:
    _step_context.reset(token)
