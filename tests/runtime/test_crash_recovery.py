"""A SIGKILLed worker's step is finished by another; stranded runs are recovered."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from perdure import Engine, Run
from perdure.world import NewEvent, dumps

from . import workflows as w
from ._processes import execute_sql, kill, spawn_worker, stop, wait_for


def _killed_mid_step(run: Run, url: str, marker_dir: Path, *, lease: float,
                     timeout: float, before_kill: Callable[[], None] = lambda: None,
                     ) -> tuple[object, int]:
    """A worker SIGKILLed inside the run's step (once the step has written its
    marker), another started at once: the run's result and that other worker's pid."""
    first = spawn_worker(url, lease=lease)
    try:
        wait_for(lambda: (marker_dir / "in-step").exists(), timeout=60)
        before_kill()
        kill(first)
        second = spawn_worker(url, lease=lease)
        try:
            return run.result(timeout=timeout), second.pid
        finally:
            stop(second)
    finally:
        if first.poll() is None:
            kill(first)


def test_sigkilled_worker_mid_step_is_finished_by_another(backend_url: str, tmp_path: Path) -> None:
    client = Engine(backend_url)
    run = client.start(w.crash_wf, str(tmp_path))
    result, second = _killed_mid_step(run, backend_url, tmp_path, lease=2.0, timeout=60)
    assert result == f"done by {second}"
    completed = [e for e in run.events() if e.event_type == "step_completed"]
    assert len(completed) == 1  # the result is recorded exactly once
    attempts = sorted(p.name.split("-")[1] for p in tmp_path.glob("attempt-*"))
    assert attempts == ["1", "2"]
    [step] = run.steps()
    assert step.status == "completed" and step.attempt == 2
    client.shutdown()


def test_a_sigkilled_workers_chain_is_taken_over_by_another(backend_url: str,
                                                            tmp_path: Path) -> None:
    """The killed worker held the second step of a sequential chain. On Postgres its
    job is then the chain's lease, naming no step (migration 0017): the worker that
    claims it once the lease runs out re-enqueues the step. The second worker starts
    while the lease is live, so its start-up sweep finds nothing stranded, and the
    periodic sweep (60 s) comes after the result's deadline: only the takeover can
    finish the run in time."""
    client = Engine(backend_url)
    run = client.start(w.chain_then_crash, str(tmp_path))

    def a_chains_lease() -> None:
        if backend_url.startswith("postgresql"):
            [job] = client.world.list_jobs(run_id=run.id)
            assert (job.kind, job.correlation_id) == ("step", None)

    result, second = _killed_mid_step(run, backend_url, tmp_path, lease=3.0,
                                      timeout=40, before_kill=a_chains_lease)
    assert result == f"done by {second}"
    steps = run.steps()
    assert [(s.status, s.attempt) for s in steps] == [("completed", 1), ("completed", 2)]
    assert client.world.list_jobs(run_id=run.id) == []
    client.shutdown()


def test_recovery_reenqueues_stranded_runs_and_leaves_parked_ones(backend_url: str) -> None:
    client = Engine(backend_url)
    pending = [client.start(w.addition, i, i) for i in range(5)]
    parked_hook = client.start(w.hooks, f"parked-{uuid.uuid4()}")
    parked_timer = client.start(w.sleeper, 3600)
    resumed_token = f"resumed-{uuid.uuid4()}"
    resumed = client.start(w.hook_then_step, resumed_token)
    with Engine(backend_url, recovery_interval=3600).launch() as first:
        wait_for(lambda: all(r.status() == "running" for r in (parked_hook, parked_timer, resumed)))
        for r in pending:
            r.result(timeout=30)
        pending = [client.start(w.addition, 10 + i, 1) for i in range(5)]
        first.worker.stop(timeout=5)  # type: ignore[union-attr]
        first.worker = None
    client.resume_hook(resumed_token, "hello")  # a received hook, unconsumed
    # A run whose step exists but whose job was lost.
    half = client.world.create_run("sequential", "[1]", run_id=str(uuid.uuid4()))[0]
    client.world.append(half.id, [NewEvent("run_started", None, {"seed": 1}),
                                  NewEvent("step_created", "s1", {"name": "noop", "args": [0]})])
    # A run whose input cannot be decoded.
    bad = client.world.create_run("addition", dumps([{"__t": "bogus", "v": 1}]),
                                  run_id=str(uuid.uuid4()))[0]
    execute_sql(backend_url, "DELETE FROM jobs")  # the queue is lost
    assert client.world.list_jobs() == []

    with Engine(backend_url).launch():
        assert [r.result(timeout=30) for r in pending] == [[10 + i + 1] for i in range(5)]
        assert resumed.result(timeout=30) == "hello"
        assert client.get_run(half.id).result(timeout=30) == 0
        wait_for(lambda: client.get_run(bad.id).status() == "failed")
    assert parked_hook.status() == "running" and parked_timer.status() == "running"
    assert client.world.list_jobs(run_id=parked_hook.id) == []
    assert client.world.list_jobs(run_id=parked_timer.id) == []
    client.shutdown()
