"""Waiting on a run this process's worker executes needs no LISTEN (Postgres).

Its end is committed here and wakes the wait directly, so the process is not sent
the end of every run of the database. When the run leaves the worker (here, it
waits on a hook after its step), the wait LISTENs and reads again: an end
committed by another process is still seen at once, not at the next poll."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from perdure import Engine, create_hook, step, workflow
from perdure.testing import wait_for

pytestmark = pytest.mark.postgres

release = threading.Event()


@step(name="result_wait_gate")
def gate() -> int:
    release.wait(30)
    return 1


@step(name="result_wait_double")
def double(i: int) -> int:
    return 2 * i


@workflow(name="result_wait_steps")
async def steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += await double(i)
    return total


@workflow(name="result_wait_nothing")
async def nothing() -> str:
    return "done"


@workflow(name="result_wait_then_hook")
async def then_hook(token: str) -> Any:
    await gate()
    return await create_hook(token=token)


def _run_ends_heard(engine: Engine) -> bool:
    listener: Any = engine.world.listener  # type: ignore[attr-defined]
    return "perdure_runs" in listener.channels()


def test_waiting_on_runs_this_worker_ends_listens_to_no_run_ends(
    pg_url: str, launched: Callable[..., Engine],
) -> None:
    engine = launched(pg_url, concurrency=4)
    assert engine.start(nothing).result(timeout=10) == "done"
    assert engine.start(steps, 5).result(timeout=10) == 20
    assert not _run_ends_heard(engine)


def test_a_run_that_leaves_the_worker_is_seen_to_end_elsewhere_at_once(
    pg_url: str, launched: Callable[..., Engine],
) -> None:
    # Polls every 60 s: only a wake-up can end the wait within its 20 s timeout.
    engine = launched(pg_url, concurrency=4, poll_interval=60.0)
    release.clear()
    run = engine.start(then_hook, "result-wait-token")
    local_subs = engine.world.notifier.local  # type: ignore[attr-defined]
    before = local_subs.subscriber_count()
    outcome: list[BaseException | Any] = []

    def wait() -> None:
        try:
            outcome.append(run.result(timeout=20))
        except BaseException as exc:  # noqa: BLE001 - the assertion reads it
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    # the wait has subscribed, without LISTEN, while the worker runs the step
    wait_for(lambda: local_subs.subscriber_count() > before, what="the waiter subscribed")
    assert not _run_ends_heard(engine)
    release.set()  # the step ends, the run waits on its hook: it leaves the worker
    wait_for(lambda: _run_ends_heard(engine), what="the waiter LISTENing")
    other = Engine(pg_url)  # another process's engine ends it
    try:
        assert other.get_run(run.id).cancel()
    finally:
        other.shutdown()
    waiter.join(30)
    assert len(outcome) == 1 and not isinstance(outcome[0], TimeoutError), outcome
    assert engine.get_run(run.id).status() == "cancelled"
