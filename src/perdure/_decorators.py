"""``@workflow`` and ``@step``: validated at decoration time, registered by name."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ._context import current_runtime

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
_workflows: dict[str, WorkflowFunction[Any, Any]] = {}
_steps: dict[str, StepFunction[Any, Any]] = {}


@dataclass(frozen=True)
class StepOptions:
    """Retry policy: ``max_retries`` more attempts after the first; the n-th retry
    waits ``retry_delay * backoff ** (n - 1)`` seconds, at most ``max_delay``."""

    name: str
    max_retries: int = 3
    retry_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 = the first retry)."""
        return min(self.max_delay, self.retry_delay * self.backoff ** max(0, attempt - 2))


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


class StepFunction(Generic[P, R]):
    """A step. Inside a workflow, calling it records a step and returns an awaitable
    of its result; anywhere else it is the plain function."""

    def __init__(self, fn: Callable[P, R], options: StepOptions) -> None:
        self.fn = fn
        self.options = options
        self.name = options.name
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        runtime = current_runtime()
        if runtime is None:
            return self.fn(*args, **kwargs)
        return runtime.call_step(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<perdure step {self.name!r}>"


class WorkflowFunction(Generic[P, R]):
    """A workflow. Start it with ``engine.start(fn, *args)``; calling it is an error."""

    def __init__(self, fn: Callable[P, Any], name: str) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@workflow needs an 'async def' function; {_qualified(fn)} is not")
        self.fn = fn
        self.name = name
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        raise TypeError(
            f"workflow {self.name!r} cannot be called directly: start it with "
            f"engine.start({self.name!r}, ...) (or engine.start(fn, ...))"
        )

    def __repr__(self) -> str:
        return f"<perdure workflow {self.name!r}>"


def _register(table: dict[str, Any], kind: str, name: str, obj: Any) -> None:
    with _lock:
        existing = table.get(name)
        if existing is not None and _qualified(existing.fn) != _qualified(obj.fn):
            raise ValueError(
                f"{kind} name {name!r} is already used by {_qualified(existing.fn)}; "
                f"give {_qualified(obj.fn)} another name with @{kind}(name=...)"
            )
        table[name] = obj


@overload
def workflow(fn: Callable[P, Any], /) -> WorkflowFunction[P, Any]: ...
@overload
def workflow(
    *, name: str | None = None
) -> Callable[[Callable[P, Any]], WorkflowFunction[P, Any]]: ...


def workflow(fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Mark an ``async def`` as a workflow, registered under ``name`` (default: ``__name__``)."""

    def decorate(f: Callable[..., Any]) -> WorkflowFunction[Any, Any]:
        wf: WorkflowFunction[Any, Any] = WorkflowFunction(f, name or f.__name__)
        _register(_workflows, "workflow", wf.name, wf)
        return wf

    return decorate(fn) if fn is not None else decorate


@overload
def step(fn: Callable[P, R], /) -> StepFunction[P, R]: ...
@overload
def step(
    *, name: str | None = None, max_retries: int = 3, retry_delay: float = 1.0,
    backoff: float = 2.0, max_delay: float = 300.0,
) -> Callable[[Callable[P, R]], StepFunction[P, R]]: ...


def step(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None, max_retries: int = 3,
    retry_delay: float = 1.0, backoff: float = 2.0, max_delay: float = 300.0,
) -> Any:
    """Mark a function (sync or async) as a step: run at least once per attempt,
    its result recorded exactly once, retried on errors."""
    if max_retries < 0 or retry_delay < 0 or backoff < 1 or max_delay < 0:
        raise ValueError("step options: max_retries >= 0, retry_delay >= 0, backoff >= 1")

    def decorate(f: Callable[..., Any]) -> StepFunction[Any, Any]:
        if not callable(f):
            raise TypeError("@step decorates a function")
        if inspect.isasyncgenfunction(f) or inspect.isgeneratorfunction(f):
            raise TypeError(f"@step cannot decorate a generator: {_qualified(f)}")
        options = StepOptions(name or f.__name__, max_retries, retry_delay, backoff, max_delay)
        s: StepFunction[Any, Any] = StepFunction(f, options)
        _register(_steps, "step", s.name, s)
        return s

    return decorate(fn) if fn is not None else decorate


def get_workflow(name: str) -> WorkflowFunction[Any, Any] | None:
    return _workflows.get(name)


def get_step(name: str) -> StepFunction[Any, Any] | None:
    return _steps.get(name)


def workflow_names() -> list[str]:
    with _lock:
        return sorted(_workflows)

