"""The perdure side of every shape: its workflows and steps, and how one iteration
is driven and timed.

Also the app of the throughput shapes' worker processes:
``perdure worker perdure.bench._shapes``.

Each driver returns milliseconds, start (``engine.start``) to result
(``run.result``) unless said otherwise: stream shapes also read their streams to the
end in between; ``stream-latency`` returns one sample per chunk (write to a live
reader); ``stream-1mb`` returns the time from the first write to the last chunk read.
"""

from __future__ import annotations

import asyncio
import base64
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import perdure
from perdure import Engine, get_writable, step, workflow

from ._catalog import Shape

_rng = random.Random(20240607)
PAYLOAD = base64.b64encode(_rng.randbytes(60 * 1024)).decode("ascii")  # 80 KiB of text
BLOB = _rng.randbytes(1024 * 1024)
RESULT_TIMEOUT = 300.0

_engine: Engine | None = None
_marks: dict[str, float] = {}  # run id -> perf_counter() at the first write (stream-1mb)
_marks_lock = threading.Lock()


def bind_engine(engine: Engine | None) -> None:
    """The in-process engine the stream-reading steps read through."""
    global _engine
    _engine = engine


def _run_id() -> str:
    ctx = perdure.current_step()
    assert ctx is not None
    return ctx.run_id


def _read(stream: str) -> Any:
    assert _engine is not None, "stream-reading steps need bind_engine()"
    return _engine.get_run(_run_id()).stream(stream)


# == steps ====================================================================
@step(name="bench_noop")
def bench_noop(i: int) -> int:
    return i


@step(name="bench_payload")
def bench_payload(data: str) -> str:
    """Takes a payload and returns one of the same size (both are recorded)."""
    return data[1:] + data[:1]


def _write_stream(stream: str, total: int, chunk: int) -> int:
    writer = get_writable(stream)
    sent = 0
    while sent < total:
        size = min(chunk, total - sent)
        start = sent % len(BLOB)
        writer.write(BLOB[start:start + size])
        sent += size
    writer.close()
    return sent


@step(name="bench_write")
def bench_write(stream: str, total: int, chunk: int) -> int:
    return _write_stream(stream, total, chunk)


@step(name="bench_transform")
def bench_transform(source: str, target: str) -> int:
    writer = get_writable(target)
    total = 0
    for data in _read(source):
        writer.write(data[::-1])
        total += len(data)
    writer.close()
    return total


@step(name="bench_merge")
def bench_merge(sources: list[str], target: str) -> int:
    writer = get_writable(target)
    total = 0
    for source in sources:
        for data in _read(source):
            writer.write(data)
            total += len(data)
    writer.close()
    return total


@step(name="bench_first_chunk")
def bench_first_chunk() -> None:
    writer = get_writable()
    writer.write(b"first")
    writer.close()


@step(name="bench_timed_chunks")
def bench_timed_chunks(count: int, gap: float) -> int:
    writer = get_writable()
    for i in range(count):
        writer.write({"i": i, "t": time.perf_counter()})
        time.sleep(gap)
    writer.close()
    return count


@step(name="bench_bulk")
def bench_bulk(total: int, chunk: int) -> int:
    with _marks_lock:
        _marks[_run_id()] = time.perf_counter()
    return _write_stream("default", total, chunk)


# == workflows ================================================================
@workflow(name="bench_seq")
async def bench_seq(n: int) -> int:
    total = 0
    for i in range(n):
        total += await bench_noop(i)
    return total


@workflow(name="bench_gather")
async def bench_gather(n: int) -> int:
    return sum(await asyncio.gather(*(bench_noop(i) for i in range(n))))


@workflow(name="bench_race")
async def bench_race(n: int) -> int:
    tasks = [asyncio.create_task(bench_noop(i)) for i in range(n)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return len(done)


@workflow(name="bench_payload_seq")
async def bench_payload_seq(n: int, size: int) -> int:
    data = PAYLOAD[:size]
    for _ in range(n):
        data = await bench_payload(data)
    return len(data)


@workflow(name="bench_payload_gather")
async def bench_payload_gather(n: int, size: int) -> int:
    outs = await asyncio.gather(*(bench_payload(PAYLOAD[i:i + size]) for i in range(n)))
    return sum(len(o) for o in outs)


@workflow(name="bench_stream_ttfc")
async def bench_stream_ttfc() -> None:
    await bench_first_chunk()


@workflow(name="bench_pipeline")
async def bench_pipeline(stages: int, total: int, chunk: int) -> list[int]:
    return list(await asyncio.gather(
        bench_write("s0", total, chunk),
        *(bench_transform(f"s{k}", f"s{k + 1}") for k in range(stages))))


@workflow(name="bench_parallel_streams")
async def bench_parallel_streams(n: int, total: int, chunk: int) -> int:
    return sum(await asyncio.gather(*(bench_write(f"p{i}", total, chunk) for i in range(n))))


@workflow(name="bench_fan")
async def bench_fan(n: int, total: int, chunk: int) -> list[int]:
    names = [f"f{i}" for i in range(n)]
    return list(await asyncio.gather(*(bench_write(s, total, chunk) for s in names),
                                     bench_merge(names, "out")))


@workflow(name="bench_latency")
async def bench_latency(count: int, gap: float) -> int:
    return int(await bench_timed_chunks(count, gap))


@workflow(name="bench_bulk_stream")
async def bench_bulk_stream(total: int, chunk: int) -> int:
    return int(await bench_bulk(total, chunk))


@workflow(name="bench_one")
async def bench_one(i: int) -> int:
    return int(await bench_noop(i))


# == drivers ==================================================================
def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def _drain(engine: Engine, run_id: str, stream: str) -> int:
    return sum(len(c) for c in engine.get_run(run_id).stream(stream))


def _start_to_result(engine: Engine, wf: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    engine.start(wf, *args).result(timeout=RESULT_TIMEOUT)
    return _ms(t0)


def _ttfc(engine: Engine, shape: Shape) -> float:
    t0 = time.perf_counter()
    run = engine.start(bench_stream_ttfc)
    first = next(iter(run.stream()))
    elapsed = _ms(t0)
    assert first == b"first"
    run.result(timeout=RESULT_TIMEOUT)
    return elapsed


def _pipeline(engine: Engine, shape: Shape) -> float:
    p = shape.params
    t0 = time.perf_counter()
    run = engine.start(bench_pipeline, p["stages"], p["bytes"], p["chunk"])
    got = _drain(engine, run.id, f"s{p['stages']}")
    run.result(timeout=RESULT_TIMEOUT)
    assert got == p["bytes"], (got, p["bytes"])
    return _ms(t0)


def _parallel(engine: Engine, shape: Shape) -> float:
    p = shape.params
    t0 = time.perf_counter()
    run = engine.start(bench_parallel_streams, shape.n, p["bytes"], p["chunk"])
    with ThreadPoolExecutor(shape.n) as pool:
        sizes = list(pool.map(lambda i: _drain(engine, run.id, f"p{i}"), range(shape.n)))
    run.result(timeout=RESULT_TIMEOUT)
    assert sizes == [p["bytes"]] * shape.n
    return _ms(t0)


def _fan(engine: Engine, shape: Shape) -> float:
    p = shape.params
    t0 = time.perf_counter()
    run = engine.start(bench_fan, shape.n, p["bytes"], p["chunk"])
    got = _drain(engine, run.id, "out")
    run.result(timeout=RESULT_TIMEOUT)
    assert got == shape.n * p["bytes"]
    return _ms(t0)


def _latency(engine: Engine, shape: Shape) -> list[float]:
    run = engine.start(bench_latency, shape.n, shape.params["gap"])
    samples = []
    for chunk in run.stream():
        samples.append((time.perf_counter() - chunk["t"]) * 1000.0)
    run.result(timeout=RESULT_TIMEOUT)
    return samples[1:]  # the first chunk may be written before the reader is live


def _bulk(engine: Engine, shape: Shape) -> float:
    p = shape.params
    run = engine.start(bench_bulk_stream, p["bytes"], p["chunk"])
    got = 0
    for chunk in run.stream():
        got += len(chunk)
    done = time.perf_counter()
    run.result(timeout=RESULT_TIMEOUT)
    assert got == p["bytes"]
    with _marks_lock:
        began = _marks.pop(run.id)
    return (done - began) * 1000.0


DRIVERS: dict[str, Callable[[Engine, Shape], float | list[float]]] = {
    "seq": lambda e, s: _start_to_result(e, bench_seq, s.n),
    "gather": lambda e, s: _start_to_result(e, bench_gather, s.n),
    "race": lambda e, s: _start_to_result(e, bench_race, s.n),
    "payload-seq": lambda e, s: _start_to_result(e, bench_payload_seq, s.n, s.params["size"]),
    "payload-gather": lambda e, s: _start_to_result(e, bench_payload_gather, s.n,
                                                    s.params["size"]),
    "stream-ttfc": _ttfc,
    "stream-pipeline": _pipeline,
    "streams-parallel": _parallel,
    "streams-fan": _fan,
    "stream-latency": _latency,
    "stream-1mb": _bulk,
}
