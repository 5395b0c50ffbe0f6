"""Every (entity status, event type) pair, generated from the transition table.

Legal pairs must apply and set the new status; illegal ones must raise
``EntityConflictError`` and write nothing. The table is the spec, so the SQL of
each backend cannot drift from it unnoticed.
"""

from __future__ import annotations

from collections import deque

import pytest

from perdure.errors import EntityConflictError, RunNotFoundError
from perdure.world import (
    RUN_TERMINAL_EVENTS,
    STATUSES,
    TRANSITIONS,
    World,
    is_legal,
    uuid7,
)

from ._support import entity_status, ev, new_run, snapshot

CID = "e1"


def _paths(entity: str) -> dict[str | None, list[str]]:
    """The shortest event path from nothing to each status of ``entity``."""
    events = [name for name, t in TRANSITIONS.items() if t.entity == entity]
    paths: dict[str | None, list[str]] = {None: []}
    queue: deque[str | None] = deque([None])
    while queue:
        status = queue.popleft()
        for name in events:
            target = TRANSITIONS[name].to_status
            if is_legal(name, status) and target not in paths:
                paths[target] = [*paths[status], name]
                queue.append(target)
    return paths


PATHS = {entity: _paths(entity) for entity in STATUSES}
CASES = [
    pytest.param(entity, status, name, id=f"{entity}:{status or 'absent'}:{name}")
    for entity, statuses in STATUSES.items()
    for status in (None, *statuses)
    for name, t in TRANSITIONS.items()
    if t.entity == entity
]


def test_every_status_is_reachable() -> None:
    for entity, statuses in STATUSES.items():
        assert set(statuses) <= set(PATHS[entity]), entity


def _bring_to(world: World, entity: str, status: str | None) -> str:
    """A run whose ``entity`` (the run itself, or ``CID`` in a running run) is in
    ``status``; returns the run id (of a run never created when the run is absent)."""
    if entity == "run":
        if status is None:
            return uuid7()
        run_id = new_run(world, started=False)
        for name in PATHS["run"][status][1:]:  # run_created came from create_run
            world.create_event(run_id, ev(name))
        return run_id
    run_id = new_run(world)
    if status is not None:
        for name in PATHS[entity][status]:
            world.create_event(run_id, ev(name, CID))
    return run_id


@pytest.mark.parametrize(("entity", "status", "event_type"), CASES)
def test_transition(world: World, entity: str, status: str | None, event_type: str) -> None:
    run_id = _bring_to(world, entity, status)
    assert entity_status(world, entity, run_id, CID) == status
    cid = None if entity == "run" else CID
    if entity == "run" and status is None:
        with pytest.raises(RunNotFoundError):
            world.append(run_id, [ev(event_type)])
        assert world.get_run(run_id) is None
        return

    before = snapshot(world, run_id)
    if is_legal(event_type, status):
        result = world.append(run_id, [ev(event_type, cid)])
        assert [e.event_type for e in result.events] == [event_type]
        assert result.last_seq == before[0].last_seq + 1
        assert entity_status(world, entity, run_id, CID) == TRANSITIONS[event_type].to_status
        assert world.list_events(run_id)[-1].seq == result.last_seq
    else:
        with pytest.raises(EntityConflictError):
            world.append(run_id, [ev(event_type, cid)])
        assert snapshot(world, run_id) == before


@pytest.mark.parametrize("terminal", sorted(RUN_TERMINAL_EVENTS))
def test_nothing_after_the_run_ends(world: World, terminal: str) -> None:
    """Every event type, even one legal for its entity, is refused once the run ended."""
    run_id = new_run(world)
    world.append(run_id, [
        ev("step_created", "pending"),
        ev("step_created", "running"), ev("step_started", "running"),
        ev("wait_created", "w"),
        ev("hook_created", "h"),
    ])
    world.create_event(run_id, ev(terminal))
    before = snapshot(world, run_id)
    attempts = [
        ev("run_created"), ev("run_started"), *(ev(t) for t in sorted(RUN_TERMINAL_EVENTS)),
        ev("step_created", "new"), ev("step_started", "pending"), ev("step_started", "running"),
        ev("step_retrying", "running"), ev("step_completed", "running"),
        ev("step_failed", "running"), ev("wait_created", "new"), ev("wait_completed", "w"),
        ev("hook_created", "new"), ev("hook_received", "h"), ev("hook_disposed", "h"),
    ]
    assert {a.event_type for a in attempts} == set(TRANSITIONS)
    for attempt in attempts:
        with pytest.raises(EntityConflictError):
            world.append(run_id, [attempt])
    assert snapshot(world, run_id) == before


def test_event_after_terminal_in_the_same_batch(world: World) -> None:
    run_id = new_run(world)
    before = snapshot(world, run_id)
    with pytest.raises(EntityConflictError):
        world.append(run_id, [ev("step_created", "a"), ev("run_completed"),
                              ev("step_created", "b")])
    assert snapshot(world, run_id) == before
    assert world.get_run(run_id).status == "running"


def test_a_batch_applies_in_order(world: World) -> None:
    """Legality is checked as the batch applies: create, start, complete in one go."""
    run_id = new_run(world)
    result = world.append(run_id, [
        ev("step_created", "s"), ev("step_started", "s"), ev("step_completed", "s"),
        ev("run_completed"),
    ])
    assert [e.seq for e in result.events] == [3, 4, 5, 6]
    assert world.get_step(run_id, "s").status == "completed"
    assert world.get_run(run_id).status == "completed"


def test_an_illegal_event_late_in_a_batch_undoes_it_all(world: World) -> None:
    run_id = new_run(world)
    before = snapshot(world, run_id)
    with pytest.raises(EntityConflictError):
        world.append(run_id, [ev("step_created", "s"), ev("step_started", "s"),
                              ev("step_created", "t"), ev("wait_completed", "nope")])
    assert snapshot(world, run_id) == before


@pytest.mark.parametrize("event_type", sorted(
    name for name, t in TRANSITIONS.items() if t.entity != "run" and t.from_status is not None
))
def test_unknown_entity(world: World, event_type: str) -> None:
    run_id = new_run(world)
    before = snapshot(world, run_id)
    with pytest.raises(EntityConflictError):
        world.append(run_id, [ev(event_type, "missing")])
    assert snapshot(world, run_id) == before
