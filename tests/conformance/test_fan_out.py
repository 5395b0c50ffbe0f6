"""A fan-out in one append: several steps created (and started) together, and
their jobs. SQLite writes their step rows and their jobs with one statement each;
these tests hold both backends to what one statement per step writes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from perdure.errors import EntityConflictError
from perdure.world import NewEvent, NewJob, World

from ._support import ev, new_run, snapshot


def _at(event_type: str, cid: str, at: float, **data: Any) -> NewEvent:
    made = ev(event_type, cid, **data)
    return NewEvent(made.event_type, made.correlation_id, made.data, at)


def test_a_fan_out_writes_each_step_as_its_events_say(world: World) -> None:
    """Steps created together, started with their creation or not, and one created
    at another time: each row has its creation's seq, its name, its status and
    attempt, and exactly the times of its events (times with every digit used)."""
    run_id = new_run(world)
    made, began = time.time() - 5.123456789, time.time() - 1.987654321
    later = made + 0.000001234
    events = [e for c in ("a", "b", "c") for e in (_at("step_created", c, made, name=f"n{c}"),
                                                    _at("step_started", c, began))]
    events += [_at("step_created", c, made, name=f"n{c}") for c in ("d", "e")]
    events += [_at("step_created", "f", later, name="nf"), _at("step_created", "g", later)]
    result = world.append(run_id, events)
    seq_of = {e.correlation_id: e.seq for e in result.events if e.event_type == "step_created"}
    rows = {s.correlation_id: s for s in world.list_steps(run_id).items}
    assert sorted(rows) == list("abcdefg")
    for cid, row in rows.items():
        started = cid in "abc"
        assert (row.name, row.status, row.attempt) == (
            "step" if cid == "g" else f"n{cid}", "running" if started else "pending",
            1 if started else 0)
        assert row.created_at == (later if cid in "fg" else made)
        assert row.started_at == (began if started else None)
    assert [s.correlation_id for s in world.list_steps(run_id).items] == sorted(
        seq_of, key=seq_of.__getitem__)


@pytest.mark.parametrize("taken", ["existing", "twice"])
def test_a_fan_out_with_a_taken_step_is_refused_by_name(world: World, taken: str) -> None:
    """A step among a fan-out's that exists already, or that the batch creates
    twice: the append is refused naming that step, and nothing is written."""
    run_id = new_run(world)
    world.append(run_id, [ev("step_created", "x")])
    before = snapshot(world, run_id)
    cids = ["a", "b", "x", "c"] if taken == "existing" else ["a", "b", "c", "b"]
    bad = "x" if taken == "existing" else "b"
    with pytest.raises(EntityConflictError, match=rf"step_created.*\b{bad}\b.*exists"):
        world.append(run_id, [ev("step_created", c) for c in cids],
                     jobs=[NewJob("step", run_id, c) for c in cids])
    assert snapshot(world, run_id) == before


def test_a_fan_out_on_an_ended_run_is_refused(world: World) -> None:
    run_id = new_run(world)
    world.create_event(run_id, ev("run_completed"))
    before = snapshot(world, run_id)
    with pytest.raises(EntityConflictError, match="step_created.*completed"):
        world.append(run_id, [ev("step_created", c) for c in "abc"])
    assert snapshot(world, run_id) == before


def test_step_jobs_enqueued_together_keep_their_ids_and_order(world: World) -> None:
    """Several step jobs in one enqueue, one of them a step's job already queued
    and one named twice: each step keeps one job (its id), the claim and due time
    of its last enqueue, and the ids come back in the order asked."""
    run_id = new_run(world)
    [old] = world.enqueue([NewJob("step", run_id, "b")])
    later = time.time() + 100
    ids = world.enqueue([NewJob("step", run_id, c, due_at=later, claimed_by="w1",
                                lease_seconds=30) for c in ("a", "b", "c", "a")])
    stored = {j.id: j for j in world.list_jobs(run_id=run_id) if j.kind == "step"}
    assert len(stored) == 3 and ids[1] == old and ids[0] == ids[3]
    assert [stored[i].correlation_id for i in ids] == ["a", "b", "c", "a"]
    assert {(j.correlation_id, j.due_at, j.claimed_by, j.attempts)
            for j in stored.values()} == {("a", later, "w1", 2), ("b", later, "w1", 1),
                                          ("c", later, "w1", 1)}
