"""Cost per step stays flat; replay errors are loud; cancellation stops a run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from perdure import Engine, RunCancelledError, RunFailedError
from perdure._replay import WorkflowInstance
from perdure.errors import CorruptedEventLogError, NonDeterminismError
from perdure.world import Event

from . import workflows as w


def test_thousand_sequential_steps_do_constant_work_per_step(engine: Engine) -> None:
    assert engine.worker is not None
    advancer = engine.worker.advancer
    replays0, read0 = advancer.replays, advancer.events_read
    run = engine.start(w.sequential, 1000)
    assert run.result(timeout=120) == sum(range(1000))
    replays, events_read = advancer.replays - replays0, advancer.events_read - read0
    # One replay (the first activation); the rest advanced the cached instance, so the
    # events read do not grow with the run: nothing like 1000 * len(log).
    assert replays <= 2, replays
    assert events_read <= 20, events_read
    assert len(run.steps()) == 1000


def _event(seq: int, kind: str, cid: str | None = None, data: dict | None = None) -> Event:
    return Event("r", seq, kind, cid, data or {}, 1000.0 + seq)


def _log(name: str = "noop") -> list[Event]:
    return [
        _event(1, "run_created", None, {"workflow": "sequential", "input": [2]}),
        _event(2, "run_started", None, {"seed": 1}),
        _event(3, "step_created", "s1", {"name": name, "args": [0]}),
        _event(4, "step_started", "s1"),
        _event(5, "step_completed", "s1", {"output": 0}),
    ]


def test_step_of_another_name_is_nondeterminism() -> None:
    inst = WorkflowInstance("r", w.sequential, [2])
    with pytest.raises(NonDeterminismError, match="'other'"):
        inst.replay(_log(name="other"))
    inst.dispose()


def test_unconsumed_event_and_event_after_end_are_corruption() -> None:
    inst = WorkflowInstance("r", w.sequential, [2])
    log = _log() + [_event(6, "step_created", "s2", {"name": "noop"}),
                    _event(7, "step_created", "s9", {"name": "noop"})]
    with pytest.raises(CorruptedEventLogError, match="unconsumed"):
        inst.replay(log)
    inst.dispose()
    inst = WorkflowInstance("r", w.sequential, [0])
    log = [_event(1, "run_created", None, {"workflow": "sequential", "input": [0]}),
           _event(2, "run_started"), _event(3, "run_completed", None, {"output": 0}),
           _event(4, "hook_received", "h1", {"payload": 1})]
    with pytest.raises(CorruptedEventLogError, match="after the run ended"):
        inst.replay(log)
    inst.dispose()


def test_result_for_unknown_step_is_corruption() -> None:
    inst = WorkflowInstance("r", w.sequential, [2])
    log = _log()[:2] + [_event(3, "step_completed", "s7", {"output": 1})]
    with pytest.raises(CorruptedEventLogError, match="unknown step"):
        inst.replay(log)
    inst.dispose()


def test_corrupted_log_fails_the_run_with_that_cause(engine: Engine) -> None:
    from perdure.world import NewEvent, NewJob

    token = f"corrupt-{time.time_ns()}"
    run = engine.start(w.hook_then_step, token)
    _wait_for(lambda: engine.world.get_hook_by_token(token) is not None)
    # A result for a step the workflow never created: replay cannot consume it.
    engine.world.append(run.id, [NewEvent("hook_received", "h1", {"payload": 1})])
    engine.world.append(run.id, [NewEvent("step_created", "s99", {"name": "echo", "args": []})])
    engine.world.append(run.id, [NewEvent("step_started", "s99"),
                                 NewEvent("step_completed", "s99", {"output": 5})])
    engine.worker.cache.clear()  # type: ignore[union-attr]
    engine.world.enqueue([NewJob("workflow", run.id)])
    with pytest.raises(RunFailedError, match="CorruptedEventLogError|NonDeterminismError"):
        run.result(timeout=30)


def test_cancel_stops_a_running_async_step_and_pending_steps(engine: Engine,
                                                             tmp_path: Path) -> None:
    marker = str(tmp_path / "m")
    run = engine.start(w.cancellable, marker)
    _wait_for(lambda: Path(marker).exists())
    assert run.cancel() is True
    with pytest.raises(RunCancelledError):
        run.result(timeout=10)
    _wait_for(lambda: Path(marker).read_text() == "cancelled")
    assert not Path(marker + ".after").exists()  # the next step never started
    assert run.status() == "cancelled"
    assert run.cancel() is False


def _wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
