"""The leader group commit of step outcomes (``Advancer.complete_step``): outcomes
that arrive while one thread commits are committed together by one thread, the
others only wait for theirs; a leader whose commit fails hands the waiting outcomes
to one of their threads instead of stranding them."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from perdure._activation import Advancer
from perdure._cache import InstanceCache
from perdure.backends import open_world
from perdure.world import NewEvent, NewJob, World, uuid7

STEPS = ["s1", "s2", "s3"]


class _Gate:
    """Wraps a World: the first ``append`` waits until ``release`` (so others queue
    behind it), then raises when told to."""

    def __init__(self, world: World, *, fail_first: bool) -> None:
        self.world = world
        self.fail_first = fail_first
        self.entered = threading.Event()
        self.release = threading.Event()
        self.appends: list[list[str]] = []
        self._first = True
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.world, name)

    def append(self, run_id: str, events: list[NewEvent], **kwargs: Any) -> Any:
        with self._lock:
            first, self._first = self._first, False
        if first:
            self.entered.set()
            assert self.release.wait(10)
            if self.fail_first:
                raise ConnectionError("the connection dropped mid-commit")
        self.appends.append([e.correlation_id or "" for e in events])
        return self.world.append(run_id, events, **kwargs)


def _running_steps(world: World) -> tuple[str, dict[str, int]]:
    run_id = uuid7()
    world.create_run("wf", "[]", run_id=run_id)
    events = [NewEvent("run_started")]
    for cid in STEPS:
        events += [NewEvent("step_created", cid, {"name": "noop"}),
                   NewEvent("step_started", cid, {"attempt": 1})]
    jobs = [NewJob("step", run_id, cid, claimed_by="w") for cid in STEPS]
    result = world.append(run_id, events, jobs=jobs)
    return run_id, dict(zip(STEPS, result.job_ids, strict=True))


def _advancer(world: Any) -> Advancer:
    return Advancer(world, InstanceCache(), "w", lease_seconds=30, webhook_base="",
                    max_payload_bytes=None, reserve=lambda n: 0,
                    on_future_job=lambda due: None)


def _complete_all(adv: Advancer, gate: _Gate, run_id: str,
                  jobs: dict[str, int]) -> dict[str, BaseException | None]:
    outcome: dict[str, BaseException | None] = {}

    def complete(cid: str) -> None:
        try:
            adv.complete_step(run_id, NewEvent("step_completed", cid, {"output": 1}), jobs[cid])
            outcome[cid] = None
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            outcome[cid] = exc

    leader = threading.Thread(target=complete, args=("s1",))
    leader.start()
    assert gate.entered.wait(10)  # s1's thread is committing
    followers = [threading.Thread(target=complete, args=(cid,)) for cid in STEPS[1:]]
    for t in followers:
        t.start()
    for _ in range(1000):  # both followers have put their outcome in the inbox
        with adv._inbox_guard:
            if len(adv._inbox.get(run_id, [])) == 2:
                break
        threading.Event().wait(0.005)
    gate.release.set()
    for t in [leader, *followers]:
        t.join(10)
        assert not t.is_alive(), "a thread is stranded waiting for its commit"
    return outcome


@pytest.mark.parametrize("fail_first", [False, True], ids=["commits", "leader-fails"])
def test_outcomes_queued_behind_a_commit_are_committed_together(
    backend_url: str, fail_first: bool
) -> None:
    world = open_world(backend_url)
    try:
        run_id, jobs = _running_steps(world)
        gate = _Gate(world, fail_first=fail_first)
        outcome = _complete_all(_advancer(gate), gate, run_id, jobs)

        # s2 and s3 arrived while s1 was being committed: one append for both.
        assert gate.appends[-1] == ["s2", "s3"]
        completed = {e.correlation_id for e in world.list_events(run_id)
                     if e.event_type == "step_completed"}
        assert outcome["s2"] is None and outcome["s3"] is None
        if fail_first:
            assert isinstance(outcome["s1"], ConnectionError)
            assert completed == {"s2", "s3"}  # s1's job stays leased: it is retried
            step_jobs = {j.id for j in world.list_jobs(run_id=run_id) if j.kind == "step"}
            assert step_jobs == {jobs["s1"]}
        else:
            assert outcome["s1"] is None
            assert completed == set(STEPS)
            assert len(gate.appends) == 2
    finally:
        world.close()
