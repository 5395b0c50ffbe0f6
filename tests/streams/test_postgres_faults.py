"""Wake-ups and connections under fire: the LISTEN connection killed over and over
(Postgres), notifications that never arrive (both backends), the reader's own
connections killed mid-stream (Postgres).

Readers here belong to a second, never-launched engine with its own World, so they
are woken only through the database (NOTIFY on their own listener, or the poll),
never by the writer's in-process publish."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import pytest

from perdure import Engine

from . import stream_workflows as w
from ._support import LISTENER_APP, Collector, Killer, sessions, wait_for, wait_for_hook

MakeReader = Callable[..., Engine]


@pytest.mark.postgres
def test_listener_killed_during_5000_writes(
    pg_engine: Engine, pg_url: str, make_reader: MakeReader
) -> None:
    """Every listening backend is terminated every 50 ms while a step writes 5,000
    chunks, each flushed (one commit per chunk): the reader gets all of them in
    order, once each, then live chunks after.

    The reader's poll is 30 s, far past the test's deadlines: what it receives in time
    comes through its listener (NOTIFY, and the wake-up of every reader after each
    reconnect), so a listener that did not heal would fail this test."""
    reader = make_reader(pg_url, poll_interval=30.0)
    listener = reader.world.listener  # type: ignore[attr-defined]
    token = f"killed-{uuid.uuid4()}"
    run = reader.get_run(pg_engine.start(w.stream_then_hook, 5000, token, 10, True).id)
    col = Collector(run)
    wait_for(lambda: listener.connected.is_set(), what="the reader's listener")
    with Killer(pg_url, listeners=True, interval=0.05) as killer:
        wait_for_hook(pg_engine, token, timeout=60)  # the 5,000 are written
    assert killer.kills >= 5, f"only {killer.kills} listening backends were terminated"
    assert listener.reconnects >= 2
    col.wait_count(5000, timeout=15)
    assert col.items == list(range(5000))
    wait_for(lambda: listener.connected.is_set(), what="the listener back")
    pg_engine.resume_hook(token)
    assert col.wait_done(15) == list(range(5010))
    wait_for(lambda: len(sessions(pg_url, LISTENER_APP)) == 2,  # one per World, back
             what="the writer's and the reader's listener, and no other")


def test_notifications_never_delivered_readers_poll(
    engine: Engine, backend_url: str, make_reader: MakeReader
) -> None:
    """No LISTEN at all on the reader's side (and no in-process publish reaches it):
    everything arrives through the poll, on both backends."""
    assert make_reader(backend_url).poll_interval <= 1.0  # the default
    reader = make_reader(backend_url, poll_interval=0.1, listen=False)
    assert getattr(reader.world, "listener", None) is None
    token = f"poll-{uuid.uuid4()}"
    run = reader.get_run(engine.start(w.stream_then_hook, 1000, token, 10).id)
    col = Collector(run)
    wait_for_hook(engine, token, timeout=30)
    col.wait_count(1000)
    engine.resume_hook(token)
    assert col.wait_done() == list(range(1010))
    if backend_url.startswith("postgres"):
        assert len(sessions(backend_url, LISTENER_APP)) <= 1  # the writer's only


@pytest.mark.postgres
def test_reader_connections_killed_mid_stream(
    pg_engine: Engine, pg_url: str, make_reader: MakeReader, caplog: pytest.LogCaptureFixture
) -> None:
    """Every non-listening session is terminated every 100 chunks the reader delivers,
    and every 20 ms in between (the writer is parked on a hook, so only reads are
    cut): the reader reconnects by itself and continues from its last index, no chunk
    twice, none skipped, then keeps receiving live ones."""
    caplog.set_level(logging.INFO, logger="perdure")
    reader = make_reader(pg_url, poll_interval=0.2)
    token = f"reader-{uuid.uuid4()}"
    run = reader.get_run(pg_engine.start(w.stream_then_hook, 3000, token, 10).id)
    wait_for_hook(pg_engine, token, timeout=30)  # the writer is parked on its hook
    with Killer(pg_url, listeners=False, interval=0.02) as killer:
        got = []
        for item in run.stream():
            got.append(item)
            if len(got) % 100 == 0:
                killer.kill_now()
            if len(got) == 3000:
                break
        assert got == list(range(3000))
    assert killer.kills >= 10
    recovered = [r.getMessage() for r in caplog.records
                 if "dead pooled connection" in r.getMessage()
                 or "lost connection" in r.getMessage() or "read failed" in r.getMessage()]
    assert recovered, "no kill reached a reader's connection"
    # a live reader (polling every 0.2 s) through 20 more rounds of kills
    col = Collector(run, start_index=3000)
    with Killer(pg_url, listeners=False, interval=0.05) as killer:
        wait_for(lambda: killer.rounds >= 20, what="20 rounds of kills")
    pg_engine.resume_hook(token)
    assert col.wait_done() == list(range(3000, 3010))
