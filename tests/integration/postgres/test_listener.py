"""The LISTEN connection: lazy, self-healing, and gone after close()."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from perdure.backends.postgres import PostgresWorld
from perdure.world import CHUNK_BYTES, NewEvent, NewJob, uuid7

from ._support import backends, wait_for

pytestmark = pytest.mark.postgres

LISTENER = "perdure-listener"


def _listener_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == LISTENER and t.is_alive()]


def _new_run(world: PostgresWorld) -> str:
    run_id = uuid7()
    world.create_run("wf", "[]", run_id=run_id)
    return run_id


def test_started_by_the_first_subscription(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any]
) -> None:
    assert pg_world.listener is not None and not pg_world.listener.running
    assert backends(admin, LISTENER) == []
    sub = pg_world.notifier.subscribe("jobs")
    assert pg_world.listener.connected.is_set()  # the first subscribe waits for LISTEN
    assert backends(admin, LISTENER) == [pg_world.listener.backend_pid()]
    pg_world.notifier.subscribe("jobs").close()  # one listener per world
    assert len(backends(admin, LISTENER)) == 1
    sub.close()


def test_notifications_from_another_process(pg_url: str, pg_world: PostgresWorld) -> None:
    """Another World (another process, as far as the server knows) writes; this one's
    subscriber wakes through NOTIFY, not through an in-process publish."""
    run_id = _new_run(pg_world)
    with PostgresWorld(pg_url, listen=False) as writer:
        sub = pg_world.notifier.subscribe(f"stream:{run_id}:out")
        other = pg_world.notifier.subscribe(f"stream:{run_id}:other")
        writer.write_chunks(run_id, "out", [(CHUNK_BYTES, b"x")])
        assert sub.wait(10)
        assert not other.wait(0)
        jobs = pg_world.notifier.subscribe("jobs")
        _new_run(writer)  # enqueues a workflow job due now
        assert jobs.wait(10)


def test_run_ends_reach_only_the_sessions_that_wait_on_runs(
    pg_url: str, pg_world: PostgresWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker listens for jobs and is never sent the end of every run; the run
    channel is LISTENed from the first subscription to a run, also when the
    listener is already running."""
    heard: list[str] = []
    publish = pg_world.notifier.local.publish
    monkeypatch.setattr(pg_world.notifier.local, "publish",
                        lambda key: (heard.append(key), publish(key)))
    jobs = pg_world.notifier.subscribe("jobs")
    with PostgresWorld(pg_url, listen=False) as writer:
        ended = _new_run(writer)
        writer.append(ended, [NewEvent("run_cancelled")])
        _new_run(writer)  # commits after the end: its wake-up comes after the end's
        assert jobs.wait(10)
        assert not [key for key in heard if key.startswith("run:")]

        waiting = _new_run(writer)
        sub = pg_world.notifier.subscribe(f"run:{waiting}")  # waits for that LISTEN
        writer.append(waiting, [NewEvent("run_cancelled")])
        assert sub.wait(10)
        assert f"run:{waiting}" in heard


def test_reconnects_after_the_backend_is_killed(
    pg_url: str, pg_world: PostgresWorld, admin: psycopg.Connection[Any]
) -> None:
    listener = pg_world.listener
    assert listener is not None
    run_id = _new_run(pg_world)
    sub = pg_world.notifier.subscribe(f"stream:{run_id}:out")
    idle = pg_world.notifier.subscribe("stream:nobody:writes-here")
    with PostgresWorld(pg_url, listen=False) as writer:
        for round_ in range(1, 4):
            pid = listener.backend_pid()
            assert pid is not None
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            wait_for(lambda r=round_: listener.reconnects >= r and listener.connected.is_set(),
                     what=f"reconnect {round_}")
            assert listener.backend_pid() not in (None, pid)
            # wake_all after the reconnect: readers re-query what the gap may have hidden
            assert idle.wait(10)
            sub.wait(0)
            writer.write_chunks(run_id, "out", [(CHUNK_BYTES, bytes([round_]))])
            assert sub.wait(10)
    assert listener.reconnects == 3
    assert len(_listener_threads()) >= 1


def test_killed_as_soon_as_it_is_back(
    pg_world: PostgresWorld, admin: psycopg.Connection[Any]
) -> None:
    """Kill each new listening connection the moment it appears: it keeps coming back."""
    listener = pg_world.listener
    assert listener is not None
    pg_world.notifier.subscribe("jobs")
    killed: set[int] = set()
    for _ in range(5):
        pid = wait_for(lambda: (p := listener.backend_pid()) not in killed and p,
                       what="a new listening connection")
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        killed.add(pid)
    wait_for(lambda: listener.connected.is_set() and listener.reconnects >= 5,
             what="the listener back after five kills")
    assert len(backends(admin, LISTENER)) == 1


def test_disabled_listener(pg_url: str, admin: psycopg.Connection[Any]) -> None:
    before = len(_listener_threads())
    with PostgresWorld(pg_url, listen=False) as world:
        world.migrate()
        assert world.listener is None
        run_id = _new_run(world)
        sub = world.notifier.subscribe(f"stream:{run_id}:out")
        world.write_chunks(run_id, "out", [(CHUNK_BYTES, b"x")])
        assert sub.wait(5)  # this process's own writes still wake it
        ended = world.notifier.subscribe(f"run:{run_id}")
        world.append(run_id, [NewEvent("run_cancelled", data={})], close_streams=True)
        assert ended.wait(5) and sub.wait(5)  # the end, and the EOF it wrote
        assert world.stream_info(run_id, "out").closed
        assert len(_listener_threads()) == before
        assert backends(admin, LISTENER) == []


def test_close_leaves_no_thread_and_no_connection(
    pg_url: str, admin: psycopg.Connection[Any]
) -> None:
    before = {t.ident for t in threading.enumerate()}
    world = PostgresWorld(pg_url)
    world.migrate()
    world.notifier.subscribe("jobs")
    _new_run(world)
    assert backends(admin, LISTENER)
    world.close()
    world.close()  # idempotent
    assert {t.ident for t in threading.enumerate() if t.is_alive()} <= before
    wait_for(lambda: backends(admin) == [], timeout=10, what="every session to end")


@pytest.mark.parametrize("steps", [1, 3], ids=["one-step", "fan-out"])
def test_unclaimed_jobs_of_new_steps_wake_other_processes(
    pg_url: str, pg_world: PostgresWorld, steps: int
) -> None:
    """Jobs of steps created by the same append take their own inserts (migration
    0014); one unclaimed among them still sends NOTIFY jobs to other sessions."""
    with PostgresWorld(pg_url, listen=False) as writer:
        run_id = _new_run(writer)
        [job] = writer.claim("setup", limit=1, lease_seconds=30)
        writer.ack("setup", [job.id])
        jobs = pg_world.notifier.subscribe("jobs")
        try:
            assert not jobs.wait(0)
            cids = [f"s{i}" for i in range(steps)]
            writer.append(run_id, [NewEvent("step_created", c, {"name": "x"}) for c in cids],
                          jobs=[NewJob("step", run_id, c, claimed_by="w" if i else None)
                                for i, c in enumerate(cids)])
            assert jobs.wait(10)
        finally:
            jobs.close()


@pytest.mark.parametrize("how", ["ack", "append"])
def test_acking_a_workflow_job_wakes_its_held_back_continuation(
    pg_url: str, pg_world: PostgresWorld, how: str
) -> None:
    """A continuation queued while the run's workflow job is leased cannot be claimed
    (one activation at a time); acking the leased job, alone or in an append
    (inline since migration 0014), sends NOTIFY jobs to other sessions."""
    with PostgresWorld(pg_url, listen=False) as writer:
        run_id = _new_run(writer)
        [job] = writer.claim("w1", limit=1, lease_seconds=30)
        writer.enqueue([NewJob("workflow", run_id)])
        assert writer.claim("w2", limit=10, lease_seconds=30) == []  # held back
        jobs = pg_world.notifier.subscribe("jobs")
        try:
            assert not jobs.wait(0)
            if how == "ack":
                writer.ack("w1", [job.id])
            else:
                writer.append(run_id, [NewEvent("run_started")], ack=[job.id])
            assert jobs.wait(10)
        finally:
            jobs.close()
        [continuation] = writer.claim("w2", limit=10, lease_seconds=30)
        assert continuation.run_id == run_id and continuation.id != job.id


def test_own_stream_writes_wake_once_with_their_chunks(
    pg_url: str, pg_world: PostgresWorld
) -> None:
    """A stream write of this World wakes its readers at the commit, with the chunks;
    the listener does not publish that write's NOTIFY again (a wake-up without chunks,
    which costs a reader a query). Another World's write comes through NOTIFY, and
    says only "query the table"."""
    run_id = _new_run(pg_world)
    sub = pg_world.notifier.subscribe(f"stream:{run_id}:out")
    marker = pg_world.notifier.subscribe(f"stream:{run_id}:marker")
    pg_world.write_chunks(run_id, "out", [(CHUNK_BYTES, b"a"), (CHUNK_BYTES, b"b")])
    with PostgresWorld(pg_url, listen=False) as other:
        other.write_chunks(run_id, "marker", [(CHUNK_BYTES, b"m")])
        assert marker.wait(10)  # NOTIFYs come in commit order: ours has been seen
        assert sub.take() == ([(0, CHUNK_BYTES, b"a"), (1, CHUNK_BYTES, b"b")], False)
        assert sub.wait(0) and not sub.wait(0)  # our write's wake-up, and only it
        other.write_chunks(run_id, "out", [(CHUNK_BYTES, b"c")])
        assert sub.wait(10)
        assert sub.take() == ([], True)
