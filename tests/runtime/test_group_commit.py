"""The leader group commit of step outcomes (``Advancer.complete_step``): outcomes
that arrive while one thread commits are committed together by that thread, and
their own threads are free at once; a leader whose commit fails goes on to commit
the outcomes that arrived meanwhile instead of stranding them."""

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
                  jobs: dict[str, int]) -> dict[str, Any]:
    outcome: dict[str, Any] = {}

    def complete(cid: str) -> None:
        try:
            outcome[cid] = adv.complete_step(
                run_id, NewEvent("step_completed", cid, {"output": 1}), jobs[cid])
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            outcome[cid] = exc

    leader = threading.Thread(target=complete, args=("s1",))
    leader.start()
    assert gate.entered.wait(10)  # s1's thread is committing
    followers = [threading.Thread(target=complete, args=(cid,)) for cid in STEPS[1:]]
    for t in followers:
        t.start()
    for t in followers:  # done while s1's commit is still held at the gate
        t.join(10)
        assert not t.is_alive(), "a follower waits for the leader's commit"
    assert not gate.release.is_set() and leader.is_alive()
    with adv._inbox_guard:
        assert [i.event.correlation_id for i in adv._inbox[run_id]] == STEPS[1:]
    gate.release.set()
    leader.join(10)
    assert not leader.is_alive(), "the leader is stranded"
    with adv._inbox_guard:
        assert run_id not in adv._inbox and run_id not in adv._leaders
    return outcome


@pytest.mark.parametrize("fail_first", [False, True], ids=["commits", "leader-fails"])
def test_outcomes_queued_behind_a_commit_are_committed_together(
    backend_url: str, fail_first: bool, caplog: pytest.LogCaptureFixture,
) -> None:
    world = open_world(backend_url)
    try:
        run_id, jobs = _running_steps(world)
        gate = _Gate(world, fail_first=fail_first)
        outcome = _complete_all(_advancer(gate), gate, run_id, jobs)

        # s2 and s3 arrived while s1 was being committed: one append for both, made
        # by s1's thread; theirs claimed nothing (the leader's commits do).
        assert gate.appends[-1] == ["s2", "s3"]
        assert outcome == {"s1": [], "s2": [], "s3": []}
        completed = {e.correlation_id for e in world.list_events(run_id)
                     if e.event_type == "step_completed"}
        if fail_first:
            assert "1 step outcomes failed to record" in caplog.text
            assert completed == {"s2", "s3"}  # s1's job stays leased: it is retried
            step_jobs = {j.id for j in world.list_jobs(run_id=run_id) if j.kind == "step"}
            assert step_jobs == {jobs["s1"]}
        else:
            assert completed == set(STEPS)
            assert len(gate.appends) == 2
            assert not [r for r in caplog.records if r.name == "perdure._activation"]
    finally:
        world.close()
