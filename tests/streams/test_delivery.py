"""Delivery on both backends: order, exactly once, resume by index, framing, named
streams, writers passed into steps, streams closed by the run's end, retries."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from perdure import Engine, Run

from . import stream_workflows as w
from ._support import Collector, wait_for_hook


def read_all(run: Run, name: str | None = None, start_index: int = 0,
             timeout: float = 20.0) -> list[Any]:
    """Every chunk up to EOF, on a thread, with a deadline."""
    return Collector(run, name, start_index).wait_done(timeout)


def typed(value: Any) -> Any:
    """``value`` with the type of every part spelled out, to compare types too."""
    if isinstance(value, dict):
        return ("dict", sorted((k, typed(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(v) for v in value])
    return (type(value).__name__, value)


def test_resume_by_index(engine: Engine) -> None:
    run = engine.start(w.stream_count, 3000)
    first: list[Any] = []
    for item in run.stream():  # live: the step is writing meanwhile
        first.append(item)
        if len(first) == 1500:
            break
    assert first == list(range(1500))
    assert read_all(run, start_index=1500) == list(range(1500, 3000))
    assert run.result(timeout=20) == 3000
    assert read_all(run, start_index=-10) == list(range(2990, 3000))
    assert read_all(run, start_index=2999) == [2999]
    assert read_all(run, start_index=3000) == []
    assert read_all(run, start_index=-5000) == list(range(3000))


def test_framing_bytes_and_values_one_for_one(engine: Engine) -> None:
    run = engine.start(w.stream_framing)
    got = read_all(run, "framing")
    expected = [*w.framing_values(), b"bytearray", b"memoryview"]
    assert [typed(v) for v in got] == [typed(v) for v in expected]
    assert len(got[2]) == w.MB and got[2] == w.megabyte()
    assert run.result(timeout=20) == len(expected)


def test_ten_concurrent_streams_of_one_megabyte(engine: Engine) -> None:
    run = engine.start(w.stream_parallel_blobs, 10)
    readers = [Collector(run, f"blob-{i}") for i in range(10)]
    for seed, reader in enumerate(readers):
        chunks = reader.wait_done(30)
        assert [len(c) for c in chunks] == [w.BLOB_CHUNK] * w.BLOB_CHUNKS
        assert hashlib.sha256(b"".join(chunks)).hexdigest() == w.blob_digest(seed)
    assert run.result(timeout=20) == [w.blob_digest(i) for i in range(10)]


def test_named_streams_writers_passed_to_steps_closed_by_run_end(engine: Engine) -> None:
    token = f"named-{uuid.uuid4()}"
    run = engine.start(w.stream_named, token)
    a, b = Collector(run, "a"), Collector(run, "b")
    default, never = Collector(run), Collector(run, "never")
    assert a.wait_done() == ["a0", "a1", {"a": 2}]  # closed by its step
    wait_for_hook(engine, token)
    b.wait_count(2)
    default.wait_count(3)
    # the run is waiting on its hook: nothing has closed b, the default stream or never
    assert not (b.done.is_set() or default.done.is_set() or never.done.is_set())
    engine.resume_hook(token)
    assert run.result(timeout=20) == (
        "stream writer .write() works inside a step; pass the writer to a step"
    )
    assert b.wait_done() == [b"b0", b"b1"]  # never closed by a step: closed by the run's end
    assert default.wait_done() == [0, 1, 2]
    assert never.wait_done() == []  # never written: the reader stops once the run has ended
    closed = {s.stream: (s.chunks, s.closed) for s in engine.world.list_streams(run.id)}
    assert closed == {"a": (3, True), "b": (2, True), "default": (3, True)}
    assert read_all(run, "a", start_index=-1) == [{"a": 2}]


def test_a_retried_step_writes_its_chunks_again(engine: Engine) -> None:
    """At least once per attempt: chunks of a failed attempt stay in the stream."""
    run = engine.start(w.stream_retried, 3)
    assert run.result(timeout=20) == 2
    assert read_all(run, "retried") == [
        {"attempt": attempt, "i": i} for attempt in (1, 2) for i in range(3)
    ]
