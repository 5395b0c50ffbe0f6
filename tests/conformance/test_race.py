"""The race from the field: workers racing on the same steps must never get an
event past a step's end into the log, nor a second creation event.

Each racer opens its own World, so on Postgres the racers hold separate
connections, as separate workers would; one variant races separate processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from perdure.backends import open_world
from perdure.errors import EntityConflictError
from perdure.world import STEP_TERMINAL, TRANSITIONS, World

from ._support import ev, new_run

STEPS = 500
DUPLICATED = 100
RACERS = 8
CREATORS = 4
BUDGET_S = 12.0  # each racer stops after this, whatever is left


def _race(url: str, run_id: str, cids: list[str], seed: int, creator: bool, start: Any,
          deadline_wall: float) -> None:
    """One worker: ``step_started`` then an end for every step, in its own random
    order (racers other than the first sometimes send the end first, which is
    refused unless another racer started the step), or, for a creator,
    ``step_created`` for every id. Refusals are the expected outcome of a lost race."""
    rng = random.Random(seed)
    order = cids[:]
    rng.shuffle(order)
    world = open_world(url, migrate=False)
    try:
        start.wait(60)
        for cid in order:
            if time.time() > deadline_wall:
                break
            if creator:
                events = [ev("step_created", cid, name=f"by {seed}")]
            else:
                end = rng.choice(["step_completed", "step_completed", "step_failed"])
                events = [ev("step_started", cid), ev(end, cid, result=seed)]
                if rng.random() < 0.2 and seed != 0:
                    events.reverse()
            for event in events:
                with contextlib.suppress(EntityConflictError):
                    world.append(run_id, [event])
    finally:
        world.close()


def _setup(world: World, steps: int) -> tuple[str, list[str], list[str]]:
    run_id = new_run(world)
    cids = [f"step-{i}" for i in range(steps)]
    world.append(run_id, [ev("step_created", cid) for cid in cids])
    return run_id, cids, [f"dup-{i}" for i in range(DUPLICATED)]


def _check(world: World, run_id: str, cids: list[str], duplicated: list[str],
           finished: bool) -> None:
    """No event after a step's end, at most (with time left: exactly) one end per
    step, exactly one creation per duplicated id, and a dense log."""
    events = world.list_events(run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert world.get_run(run_id).last_seq == len(events)
    by_step: dict[str, list[str]] = defaultdict(list)
    for event in events:
        if event.correlation_id is not None:
            by_step[event.correlation_id].append(event.event_type)

    ended = 0
    for cid in cids:
        types = by_step[cid]
        assert types[0] == "step_created", (cid, types)
        terminal = [i for i, t in enumerate(types) if TRANSITIONS[t].to_status in STEP_TERMINAL]
        assert len(terminal) <= 1, (cid, types)
        if terminal:
            ended += 1
            assert terminal[0] == len(types) - 1, f"{cid}: events after its end: {types}"
            assert types[-2] == "step_started", (cid, types)
        step = world.get_step(run_id, cid)
        assert step.attempt == types.count("step_started")
        assert (step.status in STEP_TERMINAL) == bool(terminal)
    assert ended == len(cids) if finished else ended > 0
    for cid in duplicated:
        assert by_step[cid] == ["step_created"], (cid, by_step[cid])
        assert world.get_step(run_id, cid).status == "pending"


def test_racing_threads(backend_url: str, world: World) -> None:
    run_id, cids, duplicated = _setup(world, STEPS)
    start = threading.Barrier(RACERS + CREATORS)
    deadline = time.time() + BUDGET_S
    errors: list[BaseException] = []

    def guard(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
                errors.append(exc)
        return run

    threads = [
        threading.Thread(target=guard(lambda n=n: _race(
            backend_url, run_id, duplicated if n >= RACERS else cids, n, n >= RACERS,
            start, deadline)))
        for n in range(RACERS + CREATORS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a racer hangs"
    if errors:
        raise errors[0]
    _check(world, run_id, cids, duplicated, finished=time.time() <= deadline)


def test_racing_processes(backend_url: str, world: World) -> None:
    """The same race across processes: nothing in-process serializes the writers."""
    run_id, cids, duplicated = _setup(world, STEPS // 5)
    ctx = multiprocessing.get_context("spawn")
    racers, creators = 3, 2
    start = ctx.Barrier(racers + creators)
    deadline = time.time() + BUDGET_S
    procs = [
        ctx.Process(target=_race, args=(backend_url, run_id, duplicated if n >= racers else cids,
                                        n, n >= racers, start, deadline))
        for n in range(racers + creators)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    _check(world, run_id, cids, duplicated, finished=time.time() <= deadline)
