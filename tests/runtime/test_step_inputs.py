"""A queued step's arguments (``_step_inputs.py``): the worker that created the
steps knows them and reads nothing; any other claimer reads the run's
``step_created`` events once for all its steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perdure import Engine
from perdure._step_inputs import StepInputs

from . import workflows as w


def test_the_worker_that_queued_a_fan_out_reads_none_of_its_inputs(
    backend_url: str, launched: Callable[..., Engine], record_calls: Callable[..., list[Any]],
) -> None:
    engine = launched(backend_url, concurrency=2)  # 2 slots: most of the 40 steps queue
    worker = engine.worker
    assert worker is not None
    claimed = record_calls(engine.world, "get_step")  # a queued step's claim reads its row
    run = engine.start(w.gather_echo, 40)
    assert run.result(timeout=60) == list(range(40))
    assert len(claimed) >= 20, "most steps went through the queue"
    assert worker.inputs.reads == 0


def test_another_claimer_reads_a_runs_inputs_once(
    backend_url: str, launched: Callable[..., Engine],
) -> None:
    engine = launched(backend_url, concurrency=2)
    run = engine.start(w.gather_echo, 6)
    assert run.result(timeout=60) == list(range(6))
    other = StepInputs(engine.world)  # a worker that has seen none of this run
    cids = [s.correlation_id for s in engine.world.list_steps(run.id).items]
    assert [other.args(run.id, cid) for cid in cids] == [([i], {}) for i in range(6)]
    assert other.reads == 1
