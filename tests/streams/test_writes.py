"""The write contract on both backends: ``write`` queues and returns, chunks commit
in the background several per transaction, in order; ``flush``, ``close`` and the
step's end wait until they are durable; a refused flush fails the step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perdure import Engine

from . import stream_workflows as w
from ._support import Collector, wait_for, wait_for_hook
from .test_delivery import read_all


def test_the_steps_end_waits_for_its_chunks(engine: Engine) -> None:
    """8 MiB written without flush or close, and the run ends right after the step
    (closing its streams): every chunk is stored, before the EOF."""
    run = engine.start(w.stream_unflushed, "big", 8, 1024 * 1024)
    assert run.result(timeout=30) == 8
    info = engine.world.stream_info(run.id, "big")
    assert (info.chunks, info.closed) == (8, True)
    assert [c[:1] for c in read_all(run, "big")] == [bytes([i]) for i in range(8)]


def test_flush_returns_once_the_chunks_are_stored(engine: Engine) -> None:
    run = engine.start(w.stream_flushed, "flushed", 500)
    assert run.result(timeout=20) == 500
    assert read_all(run, "flushed") == list(range(500))


def test_misuse_raises_at_the_call(engine: Engine) -> None:
    run = engine.start(w.stream_misused, "misused")
    assert run.result(timeout=20) == {
        "unserializable": "SerializationError", "after_close": "EntityConflictError"}
    assert read_all(run, "misused") == ["kept"]


def test_a_refused_flush_fails_the_step(engine: Engine) -> None:
    run = engine.start(w.stream_closed_then_written)
    assert "is closed" in run.result(timeout=20)
    assert read_all(run, "closed") == ["before"]
    steps = {s.name: s.status for s in engine.get_run(run.id).steps()}
    assert steps[w.stream_write_late.name] == "failed"


def _chunks(calls: list[Any]) -> int:
    """Chunks written by recorded ``write_chunks(run_id, stream, chunks)`` calls."""
    return sum(len(args[2]) for _, args, _ in calls)


def test_a_fast_writer_commits_many_chunks_per_transaction(
    engine: Engine, record_calls: Callable[..., list[Any]],
) -> None:
    writes = record_calls(engine.world, "write_chunks")
    run = engine.start(w.stream_count, 2000)
    assert run.result(timeout=30) == 2000
    assert read_all(run) == list(range(2000))
    assert _chunks(writes) == 2000
    assert len(writes) <= 200, f"{len(writes)} transactions for 2,000 chunks"


def test_flush_after_each_write_makes_one_transaction_each(
    engine: Engine, record_calls: Callable[..., list[Any]],
) -> None:
    token = "flush-each"
    writes = record_calls(engine.world, "write_chunks")
    run = engine.start(w.stream_then_hook, 50, token, 0, True)
    wait_for_hook(engine, token)
    assert (len(writes), _chunks(writes)) == (50, 50)
    engine.resume_hook(token)
    assert run.result(timeout=20) == 50


def test_a_reader_in_the_writers_process_reads_back_nothing(
    engine: Engine, record_calls: Callable[..., list[Any]],
) -> None:
    """Chunks committed by this process come with their wake-up: a live reader here
    delivers 200 chunks, each its own commit, with no more queries of the table than
    its first and a poll or two (a query per commit, at least, before)."""
    token = "handed-over"
    run = engine.start(w.stream_after_hook, token, 200)
    reads = record_calls(engine.world, "read_chunks")
    col = Collector(run)
    wait_for(lambda: reads, what="the reader's first query")  # it listens from here
    wait_for_hook(engine, token)
    engine.resume_hook(token)
    assert col.wait_done() == list(range(200))
    assert len(reads) <= 6, f"{len(reads)} queries for 200 chunks"
