"""The conformance workflows of the field (addition, idempotency, hooks, errors,
null bytes) and the asyncio shapes a workflow body may use."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from perdure import Engine, RunFailedError, SerializationError
from perdure.errors import HookNotFoundError, RunNotFoundError, WorkflowNotFoundError
from perdure.testing import assert_replays_cleanly

from . import workflows as w


def test_addition(engine: Engine) -> None:
    run = engine.start(w.addition, 1, 2)
    assert run.result(timeout=30) == [3]
    assert run.status() == "completed"


def test_idempotency_gather_of_10_then_100(engine: Engine) -> None:
    run = engine.start(w.idempotency)
    result = run.result(timeout=60)
    assert result == list(range(10)) + [100 + i for i in range(100)]
    assert len(run.steps()) == 110


def test_hook_resumed_three_times_in_order(engine: Engine) -> None:
    token = f"tok-{uuid.uuid4()}"
    run = engine.start(w.hooks, token)
    for i in range(3):
        _resume_when_live(engine, token, {"n": i})
    assert run.result(timeout=30) == [{"n": 0}, {"n": 1}, {"n": 2}]
    with pytest.raises(HookNotFoundError):
        engine.resume_hook(token, "too late")


def _resume_when_live(engine: Engine, token: str, payload: object) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            engine.resume_hook(token, payload)
            return
        except HookNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_fatal_error_is_caught_after_one_attempt(engine: Engine) -> None:
    tag = str(uuid.uuid4())
    run = engine.start(w.catches_fatal, tag)
    assert run.result(timeout=30) == "caught: no retry for this one"
    assert w.CALLS[f"fatal:{tag}"] == 1
    [info] = run.steps()
    assert info.status == "failed" and info.attempt == 1
    assert info.error is not None and info.error["type"] == "perdure.errors.FatalError"


def test_retryable_error_waits_retry_after(engine: Engine) -> None:
    run = engine.start(w.retries, "r")
    result = run.result(timeout=30)
    assert result["attempt"] == 2
    retrying = [e for e in run.events() if e.event_type == "step_retrying"]
    assert len(retrying) == 1
    first_failure = retrying[0].created_at.timestamp()
    assert result["at"] - first_failure >= 2.0


def test_null_bytes_and_tagged_types_round_trip(engine: Engine) -> None:
    value = {"s": "a\x00b\U0001f600", "b": b"\x00\xff", "t": (1, 2), "d": Decimal("1.5"),
             "when": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "set": {1, 2}}
    assert engine.start(w.echo_wf, value).result(timeout=30) == value


def test_step_wins_race_against_one_hour_sleep(engine: Engine) -> None:
    started = time.monotonic()
    assert engine.start(w.race_step_vs_sleep).result(timeout=30) == "step"
    assert time.monotonic() - started < 20  # finishes at once, not in an hour


def test_deterministic_helpers_replay_identically(engine: Engine) -> None:
    run = engine.start(w.deterministic_helpers)
    values = run.result(timeout=30)
    replayed = assert_replays_cleanly(engine.world, run.id)
    assert replayed == values


def test_as_completed_and_async_steps(engine: Engine) -> None:
    assert engine.start(w.as_completed_wf).result(timeout=30) == [1, 2, 3]
    assert engine.start(w.async_steps, 5).result(timeout=30) == [0, 2, 4, 6, 8]


def test_durable_sleep(engine: Engine) -> None:
    run = engine.start(w.sleeper, 0.3)
    assert run.result(timeout=30) == "woke"
    types = [e.event_type for e in run.events()]
    assert "wait_created" in types and "wait_completed" in types


def test_idempotency_key_returns_the_same_run(engine: Engine) -> None:
    first = engine.start(w.addition, 1, 2, idempotency_key="same")
    second = engine.start(w.addition, 5, 5, idempotency_key="same")
    assert first.id == second.id
    assert second.result(timeout=30) == [3]


def test_bad_input_writes_nothing(engine: Engine) -> None:
    before = len(engine.list_runs())
    with pytest.raises(SerializationError):
        engine.start(w.echo_wf, object())
    with pytest.raises(WorkflowNotFoundError):
        engine.start("no-such-workflow")
    with pytest.raises(RunNotFoundError):
        engine.get_run("no-such-run")
    with pytest.raises(HookNotFoundError):
        engine.resume_hook("no-such-token", 1)
    assert len(engine.list_runs()) == before


def test_step_outside_workflow_is_a_plain_call_and_workflow_call_is_an_error() -> None:
    assert w.add(2, 3) == 5
    with pytest.raises(TypeError, match="engine.start"):
        w.addition(1, 2)


def test_async_client_twins(engine: Engine) -> None:
    async def main() -> object:
        run = await engine.start_async(w.addition, 20, 22)
        return await run.result_async(timeout=30)

    assert asyncio.run(main()) == [42]


def test_failed_run_raises_run_failed(engine: Engine) -> None:
    run = engine.start(w.addition, 1)  # missing argument: the body cannot start
    with pytest.raises(RunFailedError, match="TypeError"):
        run.result(timeout=30)


def _names(calls: list[Any]) -> list[str]:
    return [name for name, _, _ in calls]


def test_local_start_reads_nothing_back(
    engine: Engine, record_calls: Callable[..., list[Any]],
) -> None:
    """A run started on a launched engine is activated with the event it is about to
    write, its first activation committed with its creation, and its result handed
    over by the worker: no claim, no log read, no result read, no replay."""
    assert engine.worker is not None
    advancer, world = engine.worker.advancer, engine.world
    reads_before, replays_before = advancer.events_read, advancer.replays
    calls: list[Any] = []
    for name in ("claim", "list_events", "get_run", "create_run_started", "create_run_claimed"):
        record_calls(world, name, calls)
    run = engine.start(w.sequential, 5)
    assert run.result(timeout=30) == sum(range(5))
    assert advancer.events_read == reads_before
    assert advancer.replays == replays_before
    assert _names(calls) == ["create_run_started"]


def test_local_start_commits_creation_and_first_activation_together(
    engine: Engine, record_calls: Callable[..., list[Any]],
) -> None:
    """A workflow with no steps is one commit: created, started and completed by the
    start itself, with no workflow job left behind."""
    calls: list[Any] = []
    for name in ("append", "create_run", "create_run_claimed", "create_run_started"):
        record_calls(engine.world, name, calls)
    run = engine.start(w.sequential, 0)
    assert _names(calls) == ["create_run_started"]
    assert run.status() == "completed" and run.result(timeout=30) == 0
    assert [e.event_type for e in run.events()] == ["run_created", "run_started",
                                                     "run_completed"]
    assert [e.seq for e in run.events()] == [1, 2, 3]
    assert engine.world.list_jobs(run_id=run.id) == []


def test_local_start_with_a_taken_hook_token_fails_that_run(engine: Engine) -> None:
    """The second run's creating commit is refused (the token is live): the run is
    then created for an ordinary activation, which fails it with the cause."""
    first = engine.start(w.hooks, "taken-token")
    second = engine.start(w.hooks, "taken-token")
    with pytest.raises(RunFailedError, match="taken-token"):
        second.result(timeout=30)
    assert first.status() == "running"
    first.cancel()


