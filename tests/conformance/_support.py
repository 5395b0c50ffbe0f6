"""Helpers for the conformance suite: only the public World API, no backend internals."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from perdure.world import NewEvent, World, new_token, uuid7

T = TypeVar("T")


def ev(event_type: str, cid: str | None = None, **data: Any) -> NewEvent:
    """An event with the data its projection needs (overridable by keyword)."""
    defaults: dict[str, dict[str, Any]] = {
        "step_created": {"name": "step"},
        "wait_created": {"resume_at": time.time() + 3600},
        "hook_created": {"token": new_token()},
        "step_retrying": {"retry_after": time.time() + 60},
    }
    merged = {**defaults.get(event_type, {}), **data}
    return NewEvent(event_type, cid, merged or None)


def new_run(world: World, *, started: bool = True, workflow: str = "wf", **kwargs: Any) -> str:
    """A run (``running`` unless ``started=False``); returns its id."""
    run_id = uuid7()
    world.create_run(workflow, "{}", run_id=run_id, **kwargs)
    if started:
        world.create_event(run_id, ev("run_started"))
    return run_id


def entity_status(world: World, entity: str, run_id: str, cid: str) -> str | None:
    if entity == "run":
        run = world.get_run(run_id)
        return None if run is None else run.status
    return None if (record := entity_record(world, entity, run_id, cid)) is None else record.status


def entity_record(world: World, entity: str, run_id: str, cid: str) -> Any:
    if entity == "run":
        return world.get_run(run_id)
    if entity == "step":
        return world.get_step(run_id, cid)
    items: list[Any]
    if entity == "wait":
        items = world.list_waits(run_id).items
    else:
        items = world.list_hooks(run_id=run_id).items
    return next((item for item in items if item.correlation_id == cid), None)


def poll(fn: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02) -> T:
    """Call ``fn`` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def snapshot(world: World, run_id: str) -> tuple[Any, ...]:
    """Everything an append may change for a run, to prove a refused one wrote nothing."""
    return (
        world.get_run(run_id),
        world.list_events(run_id),
        world.list_steps(run_id).items,
        world.list_waits(run_id).items,
        world.list_hooks(run_id=run_id).items,
        world.list_jobs(run_id=run_id),
        world.list_streams(run_id),
    )
