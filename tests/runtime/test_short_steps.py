"""A step known to be short runs before its start commits: an activation that
creates it commits its start, its outcome and the workflow's advance together.

Runs here are queued through the World (as a client process would start them), so
the launched engine's worker claims them and activates them; its ``append`` calls
are recorded (``record_calls``) and read per run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from perdure import Engine
from perdure._serialization import encode
from perdure._step_times import MIN_SAMPLES
from perdure.testing import wait_for
from perdure.world import dumps, uuid7

from . import workflows as w

Record = Callable[..., list[Any]]


def appends_of(calls: list[Any], run_id: str) -> list[list[str]]:
    """The event types of each recorded ``append`` of ``run_id``."""
    return [[e.event_type for e in args[1]] for _, args, _ in calls if args[0] == run_id]


def queued(engine: Engine, wf: Any, *args: Any) -> Any:
    """Start a run through the queue: created with a workflow job, claimed by the worker."""
    run_id = uuid7()
    engine.world.create_run(wf.name, dumps(encode(list(args))), run_id=run_id)
    return engine.get_run(run_id)


@pytest.fixture
def warmed(engine: Engine) -> Iterator[Engine]:
    """The engine after enough runs of each step for its worker to time them."""
    for i in range(MIN_SAMPLES):
        assert queued(engine, w.echo_wf, i).result(timeout=30) == i
        assert queued(engine, w.one_quick_flaky, False).result(timeout=30) == 1
    yield engine


ONE_COMMIT = ["run_started", "step_created", "step_started", "step_completed", "run_completed"]


def test_a_short_step_commits_with_its_activation(warmed: Engine, record_calls: Record) -> None:
    appends = record_calls(warmed.world, "append")
    run = queued(warmed, w.echo_wf, 7)
    assert run.result(timeout=30) == 7
    assert appends_of(appends, run.id) == [ONE_COMMIT]
    [s] = run.steps()
    assert (s.status, s.attempt, s.output) == ("completed", 1, 7)
    assert s.started_at is not None and s.completed_at is not None
    assert s.created_at <= s.started_at <= s.completed_at


def test_a_step_not_known_short_commits_its_start_first(
    warmed: Engine, record_calls: Record,
) -> None:
    """Never timed: the usual two commits (start, then outcome)."""
    appends = record_calls(warmed.world, "append")
    run = queued(warmed, w.one_paced, 0.0)
    assert run.result(timeout=30) == 0.0
    assert appends_of(appends, run.id) == [
        ["run_started", "step_created", "step_started"], ["step_completed", "run_completed"]]


def test_a_step_that_got_slow_is_not_short_any_more(
    warmed: Engine, record_calls: Record,
) -> None:
    for _ in range(MIN_SAMPLES):
        assert queued(warmed, w.one_paced, 0.0).result(timeout=30) == 0.0
    assert queued(warmed, w.one_paced, 0.05).result(timeout=30) == 0.05  # run before its start
    appends = record_calls(warmed.world, "append")
    run = queued(warmed, w.one_paced, 0.0)
    assert run.result(timeout=30) == 0.0
    assert len(appends_of(appends, run.id)) == 2


def test_a_short_step_to_be_retried_is_recorded_as_usual(
    warmed: Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first attempt, run before its start, fails: start and the claim commit,
    then the retry is recorded, and the second attempt completes."""
    worker = warmed.worker
    assert worker is not None
    inline: list[str] = []
    attempt_short = worker._attempt_if_short

    def recorded(run_id: str, new: Any) -> Any:
        outcome = attempt_short(run_id, new)
        if outcome is not None:
            inline.append(outcome.event.event_type)
        return outcome

    monkeypatch.setattr(worker.advancer, "_attempt_short", recorded)
    run = queued(warmed, w.one_quick_flaky, True)
    assert run.result(timeout=30) == 2
    assert inline == ["step_retrying"]  # the first attempt ran before its start committed
    assert [(e.event_type, (e.data or {}).get("attempt")) for e in run.events()] == [
        ("run_created", None), ("run_started", None), ("step_created", None),
        ("step_started", 1), ("step_retrying", 1), ("step_started", 2),
        ("step_completed", 2), ("run_completed", None),
    ]
    [s] = run.steps()
    assert (s.status, s.attempt) == ("completed", 2)


def test_a_resumed_run_runs_its_short_step_with_the_activation(
    warmed: Engine, record_calls: Record,
) -> None:
    """``echo``, timed by the warm-up, is the step the hook's payload goes to."""
    run = warmed.start(w.hook_then_step, "resumed")
    _wait_hook(warmed, "resumed")
    appends = record_calls(warmed.world, "append")
    warmed.resume_hook("resumed", {"x": 1})
    assert run.result(timeout=30) == {"x": 1}
    assert appends_of(appends, run.id) == [
        ["hook_received"],  # resume_hook's own commit, with the run's continuation job
        ["step_created", "step_started", "step_completed", "hook_disposed", "run_completed"]]


def _wait_hook(engine: Engine, token: str) -> None:
    wait_for(lambda: engine.world.get_hook_by_token(token) is not None, timeout=30,
             what=f"hook {token}")


def test_a_short_step_from_the_queue_commits_its_start_with_its_outcome(
    backend_url: str, launched: Callable[..., Engine], record_calls: Record,
) -> None:
    """A fan-out wider than the worker claims at creation leaves steps in the queue;
    each one claimed from there, known short, runs first and commits its start
    with its outcome instead of a commit of its own before it runs."""
    engine = launched(backend_url, concurrency=1)  # claims at most 4 steps at creation
    for i in range(MIN_SAMPLES):
        assert engine.start(w.echo_wf, i).result(timeout=30) == i
    appends = record_calls(engine.world, "append")
    record_calls(engine.world, "append_many", into=appends)
    run = engine.start(w.gather_echo, 8)
    assert run.result(timeout=30) == list(range(8))
    writes = [[(e.event_type, e.correlation_id) for e in r.events]
              for r in _requests(appends) if r.run_id == run.id]
    from_queue = 0
    for events in writes:  # (the steps claimed at creation start in create_run_started)
        for i, (kind, cid) in enumerate(events):
            if kind == "step_started":
                assert events[i + 1:i + 2] == [("step_completed", cid)], writes
                from_queue += 1
    assert from_queue > 0, writes  # some steps did come from the queue
    assert [s.attempt for s in run.steps()] == [1] * 8


def _requests(calls: list[Any]) -> list[Any]:
    """The AppendRequests of recorded ``append`` and ``append_many`` calls."""
    from perdure.world import AppendRequest

    out: list[Any] = []
    for name, args, _ in calls:
        if name == "append_many":
            out.extend(args[0])
        else:
            out.append(AppendRequest(args[0], list(args[1])))
    return out
