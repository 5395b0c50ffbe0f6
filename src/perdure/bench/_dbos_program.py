"""The DBOS side of ``perdure bench --compare dbos``.

Run by the benchmark virtualenv's Python (``.bench-venv``, where ``dbos`` is
installed and perdure is not), never imported by perdure. Measures the shapes it
is asked for, each written the way a DBOS user would write it (``@DBOS.workflow``,
``@DBOS.step``, ``DBOS.start_workflow`` and ``handle.get_result()``,
``asyncio.gather`` of async steps, ``DBOS.asyncio_wait``, ``DBOS.write_stream`` /
``DBOS.read_stream``), with DBOS's default settings.

Protocol: one JSON line per request on stdin (first ``{"url": ...}``, then
``{"shape": ..., "plan": ...}`` per shape, then ``{"quit": true}``), one JSON line
per answer on stdout; anything else it prints goes to stderr.

``--worker`` makes it a worker process for the throughput shapes: it listens on
the ``bench_tp`` queue until its stdin closes.
"""
# mypy: ignore-errors

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import _measure  # sibling file: this runs as a script
from _catalog import PROCESS_KINDS, STARTERS, Shape
from dbos import DBOS, DBOSClient

QUEUE = "bench_tp"
APP_VERSION = "perdure-bench"
WARMUP_PER_WORKER = 25

_rng = random.Random(20240607)
PAYLOAD = base64.b64encode(_rng.randbytes(60 * 1024)).decode("ascii")
BLOB = _rng.randbytes(1024 * 1024)
_marks: dict[str, float] = {}
_marks_lock = threading.Lock()


def config(url: str, executor_id: str) -> dict:
    return {"name": "perdure-bench", "system_database_url": url, "log_level": "WARNING",
            "application_version": APP_VERSION, "executor_id": executor_id}


# == steps ====================================================================
@DBOS.step(name="noop")
def noop(i: int) -> int:
    return i


@DBOS.step(name="anoop")
async def anoop(i: int) -> int:
    return i


@DBOS.step(name="payload")
def payload(data: str) -> str:
    return data[1:] + data[:1]


@DBOS.step(name="apayload")
async def apayload(data: str) -> str:
    return data[1:] + data[:1]


def _pieces(total: int, chunk: int):
    sent = 0
    while sent < total:
        size = min(chunk, total - sent)
        start = sent % len(BLOB)
        yield BLOB[start:start + size]
        sent += size


@DBOS.step(name="awrite")
async def awrite(key: str, total: int, chunk: int) -> int:
    for piece in _pieces(total, chunk):
        await DBOS.write_stream_async(key, piece)
    await DBOS.close_stream_async(key)
    return total


@DBOS.step(name="atransform")
async def atransform(source: str, target: str) -> int:
    total = 0
    async for data in DBOS.read_stream_async(DBOS.workflow_id, source):
        await DBOS.write_stream_async(target, data[::-1])
        total += len(data)
    await DBOS.close_stream_async(target)
    return total


@DBOS.step(name="amerge")
async def amerge(sources: list[str], target: str) -> int:
    total = 0
    for source in sources:
        async for data in DBOS.read_stream_async(DBOS.workflow_id, source):
            await DBOS.write_stream_async(target, data)
            total += len(data)
    await DBOS.close_stream_async(target)
    return total


@DBOS.step(name="first_chunk")
def first_chunk() -> None:
    DBOS.write_stream("default", b"first")
    DBOS.close_stream("default")


@DBOS.step(name="timed_chunks")
def timed_chunks(count: int, gap: float) -> int:
    for i in range(count):
        DBOS.write_stream("default", {"i": i, "t": time.perf_counter()})
        time.sleep(gap)
    DBOS.close_stream("default")
    return count


@DBOS.step(name="bulk")
def bulk(total: int, chunk: int) -> int:
    with _marks_lock:
        _marks[DBOS.workflow_id] = time.perf_counter()
    for piece in _pieces(total, chunk):
        DBOS.write_stream("default", piece)
    DBOS.close_stream("default")
    return total


# == workflows ================================================================
@DBOS.workflow(name="seq")
def seq(n: int) -> int:
    total = 0
    for i in range(n):
        total += noop(i)
    return total


@DBOS.workflow(name="gather")
async def gather(n: int) -> int:
    return sum(await asyncio.gather(*(anoop(i) for i in range(n))))


@DBOS.workflow(name="race")
async def race(n: int) -> int:
    done, pending = await DBOS.asyncio_wait([anoop(i) for i in range(n)],
                                            return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return len(done)


@DBOS.workflow(name="payload_seq")
def payload_seq(n: int, size: int) -> int:
    data = PAYLOAD[:size]
    for _ in range(n):
        data = payload(data)
    return len(data)


@DBOS.workflow(name="payload_gather")
async def payload_gather(n: int, size: int) -> int:
    outs = await asyncio.gather(*(apayload(PAYLOAD[i:i + size]) for i in range(n)))
    return sum(len(o) for o in outs)


@DBOS.workflow(name="stream_ttfc")
def stream_ttfc() -> None:
    first_chunk()


@DBOS.workflow(name="pipeline")
async def pipeline(stages: int, total: int, chunk: int) -> list[int]:
    return list(await asyncio.gather(
        awrite("s0", total, chunk),
        *(atransform(f"s{k}", f"s{k + 1}") for k in range(stages))))


@DBOS.workflow(name="parallel_streams")
async def parallel_streams(n: int, total: int, chunk: int) -> int:
    return sum(await asyncio.gather(*(awrite(f"p{i}", total, chunk) for i in range(n))))


@DBOS.workflow(name="fan")
async def fan(n: int, total: int, chunk: int) -> list[int]:
    names = [f"f{i}" for i in range(n)]
    return list(await asyncio.gather(*(awrite(s, total, chunk) for s in names),
                                     amerge(names, "out")))


@DBOS.workflow(name="latency")
def latency(count: int, gap: float) -> int:
    return timed_chunks(count, gap)


@DBOS.workflow(name="bulk_stream")
def bulk_stream(total: int, chunk: int) -> int:
    return bulk(total, chunk)


@DBOS.workflow(name="one")
def one(i: int) -> int:
    return noop(i)


# == drivers ==================================================================
def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def _start_to_result(wf, *args) -> float:
    t0 = time.perf_counter()
    DBOS.start_workflow(wf, *args).get_result()
    return _ms(t0)


def _drain(wfid: str, key: str) -> int:
    return sum(len(c) for c in DBOS.read_stream(wfid, key))


def _ttfc(shape: Shape) -> float:
    t0 = time.perf_counter()
    handle = DBOS.start_workflow(stream_ttfc)
    reader = DBOS.read_stream(handle.get_workflow_id(), "default")
    first = next(reader)
    elapsed = _ms(t0)
    reader.close()
    assert first == b"first"
    handle.get_result()
    return elapsed


def _pipeline(shape: Shape) -> float:
    p = shape.params
    t0 = time.perf_counter()
    handle = DBOS.start_workflow(pipeline, p["stages"], p["bytes"], p["chunk"])
    got = _drain(handle.get_workflow_id(), f"s{p['stages']}")
    handle.get_result()
    assert got == p["bytes"], (got, p["bytes"])
    return _ms(t0)


def _parallel(shape: Shape) -> float:
    p = shape.params
    t0 = time.perf_counter()
    handle = DBOS.start_workflow(parallel_streams, shape.n, p["bytes"], p["chunk"])
    wfid = handle.get_workflow_id()
    with ThreadPoolExecutor(shape.n) as pool:
        sizes = list(pool.map(lambda i: _drain(wfid, f"p{i}"), range(shape.n)))
    handle.get_result()
    assert sizes == [p["bytes"]] * shape.n
    return _ms(t0)


def _fan(shape: Shape) -> float:
    p = shape.params
    t0 = time.perf_counter()
    handle = DBOS.start_workflow(fan, shape.n, p["bytes"], p["chunk"])
    got = _drain(handle.get_workflow_id(), "out")
    handle.get_result()
    assert got == shape.n * p["bytes"]
    return _ms(t0)


def _latency(shape: Shape) -> list[float]:
    handle = DBOS.start_workflow(latency, shape.n, shape.params["gap"])
    samples = []
    for chunk in DBOS.read_stream(handle.get_workflow_id(), "default"):
        samples.append((time.perf_counter() - chunk["t"]) * 1000.0)
    handle.get_result()
    return samples[1:]


def _bulk(shape: Shape) -> float:
    p = shape.params
    handle = DBOS.start_workflow(bulk_stream, p["bytes"], p["chunk"])
    wfid = handle.get_workflow_id()
    got = sum(len(c) for c in DBOS.read_stream(wfid, "default"))
    done = time.perf_counter()
    handle.get_result()
    assert got == p["bytes"]
    with _marks_lock:
        began = _marks.pop(wfid)
    return (done - began) * 1000.0


DRIVERS = {
    "seq": lambda s: _start_to_result(seq, s.n),
    "gather": lambda s: _start_to_result(gather, s.n),
    "race": lambda s: _start_to_result(race, s.n),
    "payload-seq": lambda s: _start_to_result(payload_seq, s.n, s.params["size"]),
    "payload-gather": lambda s: _start_to_result(payload_gather, s.n, s.params["size"]),
    "stream-ttfc": _ttfc,
    "stream-pipeline": _pipeline,
    "streams-parallel": _parallel,
    "streams-fan": _fan,
    "stream-latency": _latency,
    "stream-1mb": _bulk,
}


# == commits ==================================================================
def _flush() -> int:
    """Make the idle pooled connections of DBOS's system database flush their
    statistics; returns the commits that added (SQLAlchemy's pre-ping, one each)."""
    from dbos._dbos import _get_dbos_instance

    engine = _get_dbos_instance()._sys_db.engine
    pool = engine.pool
    conns = []
    try:
        for _ in range(pool.checkedin()):
            conns.append(engine.raw_connection())
        for conn in conns:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.close()
            conn.rollback()
    finally:
        for conn in conns:
            conn.close()
    return len(conns) if getattr(pool, "_pre_ping", False) else 0


# == running ==================================================================
def measure(shape: Shape, plan: dict, counter: _measure.CommitCounter) -> _measure.Result:
    result = _measure.Result("dbos", shape.name, shape.kind, shape.steps)
    if "bytes" in shape.params:
        result.extra["bytes"] = shape.params["bytes"]
    drive = DRIVERS[shape.kind]
    try:
        before = counter.settled(_flush)  # then warm-up and timed loop back to back
        warm = _measure.warm_up(lambda: drive(shape), shape.warmup, plan["budget"])
        samples, done = _measure.timed_loop(lambda: drive(shape), iterations=plan["iterations"],
                                            min_iterations=shape.min_iterations,
                                            budget=plan["budget"])
        result.commits = counter.settled(_flush) - before
        result.commit_runs = warm + done
        result.samples, result.iterations = samples, done
    except Exception as exc:  # noqa: BLE001
        result.error = f"{type(exc).__name__}: {exc}"
        result.extra["traceback"] = traceback.format_exc()
    return result


def throughput(url: str, shape: Shape, counter: _measure.CommitCounter) -> _measure.Result:
    result = _measure.Result("dbos", shape.name, shape.kind, 1)
    workers = int(shape.params["workers"])
    before = counter.settled(_flush)
    procs = []
    client = None
    try:
        for i in range(workers):
            proc = subprocess.Popen([sys.executable, __file__, "--worker", url, f"worker-{i}"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append(proc)
        for proc in procs:
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"DBOS worker did not start: {line!r}")
        client = DBOSClient(system_database_url=url)
        warm = WARMUP_PER_WORKER * workers
        _batch(client, warm)
        # as perdure's: min_iterations rounds, the median reported
        rounds = _measure.timed_rounds(lambda: _batch(client, shape.n), shape.min_iterations)
        result.samples = [elapsed * 1000.0 for elapsed in rounds]
        result.iterations = len(rounds)
        result.extra["workflows_per_s"] = shape.n / statistics.median(rounds)
        result.extra["workers"] = workers
        result.commit_runs = shape.n * len(rounds) + warm
    except Exception as exc:  # noqa: BLE001
        result.error = f"{type(exc).__name__}: {exc}"
        result.extra["traceback"] = traceback.format_exc()
    finally:
        for proc in procs:
            proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if client is not None:
            client.destroy()
    if not result.error:
        time.sleep(0.2)
        result.commits = counter.settled(_flush) - before
    return result


def _batch(client: DBOSClient, n: int) -> None:
    options = {"queue_name": QUEUE, "workflow_name": "one", "app_version": APP_VERSION}
    with ThreadPoolExecutor(STARTERS) as pool:
        handles = list(pool.map(lambda i: client.enqueue(options, i), range(n)))
    for index, handle in enumerate(handles):
        value = handle.get_result(polling_interval_sec=0.01)
        if value != index:
            raise AssertionError(f"{handle.get_workflow_id()} returned {value!r}")


def worker(url: str, executor_id: str) -> None:
    DBOS(config=config(url, executor_id))
    DBOS.listen_queues([QUEUE])
    DBOS.launch()
    DBOS.register_queue(QUEUE, polling_interval_sec=0.01)
    print("ready", flush=True)
    sys.stdin.read()  # until the driver closes our stdin
    DBOS.destroy()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    # Answers go to the original stdout; anything else printed goes to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def answer(data: dict) -> None:
        answers.write(json.dumps(data) + "\n")
        answers.flush()

    hello = json.loads(sys.stdin.readline())
    url = hello["url"]
    counter = _measure.CommitCounter(url)
    DBOS(config=config(url, "driver"))
    DBOS.listen_queues([])
    DBOS.launch()
    # Registered here, before any worker starts, so enqueues always find it.
    DBOS.register_queue(QUEUE, polling_interval_sec=0.01)
    from importlib.metadata import version

    answer({"dbos_version": version("dbos")})
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("quit"):
                break
            shape = Shape.from_json(request["shape"])
            if shape.kind in PROCESS_KINDS:
                result = throughput(url, shape, counter)
            else:
                result = measure(shape, request["plan"], counter)
            answer(result.to_json())
    finally:
        DBOS.destroy()
    answer({"bye": True})


if __name__ == "__main__":
    main()
