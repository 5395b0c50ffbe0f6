"""Work of different runs shared: a worker's activations that finish while another
activation's commit is in flight are committed together (``append_many``), a
client's concurrent starts likewise (``create_runs``), and the logs of the runs a
claim takes come with it (``claim_with_logs``). Each run still gets exactly its
own events, and replays cleanly (the ``launched`` fixture checks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from perdure import Engine
from perdure._serialization import encode
from perdure.world import dumps, uuid7

from . import workflows as w

Record = Callable[..., list[Any]]


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def _hold_first(world: Any, name: str) -> tuple[threading.Event, threading.Event]:
    """Make the first call of ``world.<name>`` wait for ``release``; ``entered`` is
    set when it has begun."""
    entered, release = threading.Event(), threading.Event()
    original = getattr(world, name)
    state = {"first": True}

    def held(*args: Any, **kwargs: Any) -> Any:
        if state.pop("first", False):
            entered.set()
            assert release.wait(20)
        return original(*args, **kwargs)

    setattr(world, name, held)
    return entered, release


def test_activations_of_several_runs_share_a_commit(
    backend_url: str, launched: Callable[..., Engine], record_calls: Record
) -> None:
    engine = launched(backend_url, concurrency=16)  # a slot for each run and its step
    worker = engine.worker
    assert worker is not None
    batches = record_calls(engine.world, "append_many")
    entered, release = _hold_first(engine.world, "append")
    try:
        ids = [uuid7() for _ in range(6)]
        engine.world.create_run(w.echo_wf.name, dumps(encode([0])), run_id=ids[0])
        assert entered.wait(20)  # the first run's activation is committing
        for i, run_id in enumerate(ids[1:], start=1):
            engine.world.create_run(w.echo_wf.name, dumps(encode([i])), run_id=run_id)
        _until(lambda: len(worker.append._queue) == 5, "the other activations to queue")
    finally:
        release.set()
    assert [engine.get_run(r).result(timeout=30) for r in ids] == list(range(6))
    # One commit holds the five activations that queued (and maybe more that
    # queued before it began, such as the first run's step result).
    started = [{r.run_id for r in requests if r.events[0].event_type == "run_started"}
               for _, (requests,), _ in batches]
    assert set(ids[1:]) in started
    assert worker.append.batches >= 1


def test_concurrent_starts_of_a_client_share_a_commit(backend_url: str, engine: Engine,
                                                       record_calls: Record) -> None:
    client = Engine(backend_url)
    try:
        batches = record_calls(client.world, "create_runs")
        entered, release = _hold_first(client.world, "create_run")
        with ThreadPoolExecutor(5) as pool:
            first = pool.submit(client.start, w.echo_wf, 0)
            assert entered.wait(20)
            rest = [pool.submit(client.start, w.echo_wf, i) for i in range(1, 5)]
            _until(lambda: len(client._create._queue) == 4, "the other starts to queue")
            release.set()
            runs = [first.result(20)] + [f.result(20) for f in rest]
        assert [r.result(timeout=30) for r in runs] == list(range(5))
        [(_, (requests,), _)] = batches
        assert sorted(r.run_id for r in requests) == sorted(r.id for r in runs[1:])
    finally:
        client.shutdown()


def test_the_logs_of_claimed_runs_are_read_with_the_claim(engine: Engine,
                                                          record_calls: Record) -> None:
    reads = record_calls(engine.world, "list_events")
    claims = record_calls(engine.world, "claim_with_logs")
    entered, release = _hold_first(engine.world, "claim_with_logs")
    try:
        assert entered.wait(20)  # the dispatcher is claiming: the runs wait in the queue
        ids = [uuid7() for _ in range(3)]
        for i, run_id in enumerate(ids):
            engine.world.create_run(w.addition.name, dumps(encode([i, 1])), run_id=run_id)
    finally:
        release.set()
    assert [engine.get_run(r).result(timeout=30) for r in ids] == [[1], [2], [3]]
    activations = [args[0] for _, args, kwargs in reads  # result() reads the end only
                   if args[0] in ids and "types" not in kwargs]
    assert activations == [], "an activation read a log the claim had read"
    assert claims, "the worker claimed some other way"


def _ended(engine: Engine, ids: list[str]) -> bool:
    runs = [engine.world.get_run(r) for r in ids]
    return all(r is not None and r.status == "completed" for r in runs)


def test_a_client_reads_the_ends_of_its_runs_together(backend_url: str, engine: Engine,
                                                      record_calls: Record) -> None:
    """The first end a client reads brings along the ends of every run it started;
    on Postgres it then hears its runs end, and the next read brings those along."""
    client = Engine(backend_url)
    try:
        reads = record_calls(client.world, "read_ends")
        first = [client.start(w.echo_wf, i) for i in range(20)]
        _until(lambda: _ended(engine, [r.id for r in first]), "the runs to end")
        assert [r.result(timeout=30) for r in first] == list(range(20))
        assert [len(ids) for _, (ids,), _ in reads] == [20]
        if not backend_url.startswith("postgresql"):
            return  # SQLite: wake-ups do not cross Worlds, so nothing more is heard
        second = [client.start(w.echo_wf, i) for i in range(10)]
        _until(lambda: len(client.ends._ended) == 10, "the client to hear the ends")
        assert [r.result(timeout=30) for r in second] == list(range(10))
        assert [len(ids) for _, (ids,), _ in reads] == [20, 10]
    finally:
        client.shutdown()


def _claim_sizes(world: Any, monkeypatch: Any) -> tuple[list[int], threading.Event]:
    """The number of jobs each ``claim_with_logs`` of ``world`` returns from now on,
    and an Event set after each claim."""
    sizes: list[int] = []
    claimed = threading.Event()
    original = world.claim_with_logs

    def counted(*args: Any, **kwargs: Any) -> Any:
        jobs, logs = original(*args, **kwargs)
        sizes.append(len(jobs))
        claimed.set()
        return jobs, logs

    monkeypatch.setattr(world, "claim_with_logs", counted)
    return sizes, claimed


def _five_runs_at_a_busy_worker(backend_url: str, engine: Engine,
                                monkeypatch: Any) -> list[int]:
    """Five runs started one by one (five commits, five wake-ups, 0.4 s) while the
    worker has a job in flight: the sizes of the worker's claims meanwhile."""
    name = uuid7()
    entered, release = w.hold(name)
    client = Engine(backend_url)
    try:
        blocker = engine.start(w.held_wf, name)
        assert entered.wait(20)  # the worker is busy from here on
        sizes, claimed = _claim_sizes(engine.world, monkeypatch)
        assert claimed.wait(20)  # a claim just ended (a contended worker waits from here)
        runs = []
        for i in range(5):  # five commits, five wake-ups, spread over 0.4 s
            runs.append(client.start(w.echo_wf, i))
            if i < 4:
                time.sleep(0.1)
        assert [r.result(timeout=30) for r in runs] == list(range(5))
    finally:
        release.set()
        client.shutdown()
    assert blocker.result(timeout=30) == name
    return [n for n in sizes if n]


def test_a_contended_busy_worker_takes_the_jobs_of_its_cooldown_in_one_claim(
    backend_url: str, launched: Callable[..., Engine], monkeypatch: Any
) -> None:
    """A worker that other workers take jobs from under (its claims after wake-ups
    come back empty) and that has a job in flight waits out the claim cooldown:
    the runs that arrive meanwhile come in one claim, not one claim (and one
    commit) each."""
    engine = launched(backend_url, concurrency=8, claim_cooldown=2.0)
    assert engine.worker is not None
    for _ in range(16):  # as if it had lost 16 races to other workers
        engine.worker.pacing.claimed(asked=8, got=0, woken=True, at=time.monotonic())
    assert _five_runs_at_a_busy_worker(backend_url, engine, monkeypatch) == [5]


def test_a_lone_busy_worker_claims_at_each_wake_up(
    backend_url: str, launched: Callable[..., Engine], monkeypatch: Any
) -> None:
    """No other worker takes its jobs: the cooldown would only delay them."""
    engine = launched(backend_url, concurrency=8, claim_cooldown=2.0)
    assert len(_five_runs_at_a_busy_worker(backend_url, engine, monkeypatch)) >= 3


def test_an_idle_worker_claims_at_once_whatever_its_cooldown(
    backend_url: str, launched: Callable[..., Engine], monkeypatch: Any
) -> None:
    engine = launched(backend_url, concurrency=8, claim_cooldown=600.0)
    sizes, claimed = _claim_sizes(engine.world, monkeypatch)
    assert claimed.wait(20)  # the worker has claimed (nothing) and is idle
    client = Engine(backend_url)
    try:
        run = client.start(w.echo_wf, "now")
        assert run.result(timeout=20) == "now"  # not after the 600 s cooldown
    finally:
        client.shutdown()
    assert 1 in sizes


def test_the_append_that_ends_a_race_acks_the_losers_jobs(engine: Engine) -> None:
    """The losers of a race are still running when the winner ends the run: the
    ending append acknowledges their jobs with the winner's, and their outcomes,
    arriving later, need no write of their own."""
    world = engine.world
    acks: list[list[int]] = []
    original = world.ack

    def ack(worker_id: str, job_ids: list[int]) -> None:
        acks.append(list(job_ids))
        original(worker_id, job_ids)

    world.ack = ack  # type: ignore[method-assign]
    w.LOSERS_GO.clear()
    try:
        run = engine.start(w.first_of, 4)
        assert run.result(timeout=20) == 0
        assert world.list_jobs(run_id=run.id) == []  # the losers' jobs went with the end
    finally:
        w.LOSERS_GO.set()
    _until(lambda: engine.worker is not None and not engine.worker._held_jobs(),
           "the losers to finish")
    assert acks == []
    assert [s.status for s in run.steps()].count("completed") == 1
