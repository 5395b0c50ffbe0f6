"""The chaos workload: one mixed workflow, run by every worker of a chaos run.

A plain module, so worker processes load it by path
(``perdure worker src/perdure/chaos/workload.py``) and the checking process
imports it (``perdure.chaos.workload``) to replay the logs.

``chaos_mixed(key)``: 10 sequential steps, a ``gather`` of 5 (async steps, one of
them failing its first attempt on purpose in a quarter of the runs), a 1 s durable
sleep, a hook resumed from outside (token ``chaos:<key>``), and a step that streams
200 chunks to a live reader. Its result is a pure function of ``key``
(:func:`expected_result`), so the checker knows what every run must return.

Every step first writes a side-effect row into the application table
``chaos_app.side_effects``, keyed by (run, step, attempt), idempotently: the
checker compares those rows with the attempts the event log recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import zlib
from typing import Any

import psycopg

import perdure
from perdure import RetryableError, create_hook, get_writable, sleep, step, workflow

WORKFLOW = "chaos_mixed"
STREAM = "chaos"
SEQUENTIAL = 10
FAN_OUT = 5
CHUNKS = 200
SLEEP_SECONDS = 1.0
APP_NAME = "perdure-chaos-app"
URL_ENV = "PERDURE_CHAOS_APP_URL"

# Attempts count starts, and a SIGKILLed worker costs its step an attempt: allow
# plenty, so a step that is unlucky with kills still completes (exhausted retries
# would show up as a failed run, i.e. "lost").
RETRIES: dict[str, Any] = {"max_retries": 25, "retry_delay": 0.2, "backoff": 1.5,
                           "max_delay": 2.0}

APP_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS chaos_app;
CREATE TABLE IF NOT EXISTS chaos_app.side_effects (
    run_id         text NOT NULL,
    correlation_id text NOT NULL,
    step_name      text NOT NULL,
    attempt        integer NOT NULL,
    pid            integer NOT NULL,
    written_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, correlation_id, attempt)
);
"""


# == what every run must produce ===============================================
def hook_token(key: str) -> str:
    return f"chaos:{key}"


def hook_payload(key: str) -> dict[str, Any]:
    return {"approved": key, "note": "resumed from outside"}


def chunk(key: str, index: int) -> dict[str, Any]:
    return {"run": key, "i": index}


def seq_value(key: str, index: int) -> int:
    return zlib.crc32(f"{key}/seq/{index}".encode()) % 1000


def fan_value(key: str, index: int) -> int:
    return zlib.crc32(f"{key}/fan/{index}".encode()) % 1000


def flaky(key: str) -> bool:
    """Runs whose first fan-out step fails its first attempt (a planned retry)."""
    return zlib.crc32(key.encode()) % 4 == 0


def expected_result(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "total": sum(seq_value(key, i) for i in range(SEQUENTIAL)),
        "fan": [fan_value(key, j) for j in range(FAN_OUT)],
        "payload": hook_payload(key),
        "streamed": CHUNKS,
    }


# == the application's own database access =====================================
class _Local(threading.local):
    conn: psycopg.Connection[Any] | None = None


_local = _Local()


def _app_url() -> str:
    url = os.environ.get(URL_ENV)
    if url:
        return url
    ctx = perdure.current_step()
    if ctx is None:
        raise RuntimeError("the chaos workload's steps write to the run's database")
    return str(ctx.world.url)


def _connect() -> psycopg.Connection[Any]:
    return psycopg.connect(_app_url(), autocommit=True, application_name=APP_NAME,
                           connect_timeout=5)


def app_execute(sql: str, params: tuple[Any, ...], *, patience: float = 90.0) -> None:
    """Run an idempotent statement on this thread's connection, reconnecting (with
    backoff) through dropped connections and a restarting server."""
    deadline = time.monotonic() + patience
    delay = 0.05
    while True:
        try:
            if _local.conn is None or _local.conn.closed or _local.conn.broken:
                _local.conn = _connect()
            _local.conn.execute(sql, params)
            return
        except psycopg.OperationalError:
            if _local.conn is not None:
                with contextlib.suppress(Exception):
                    _local.conn.close()
                _local.conn = None
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(1.0, delay * 2)


def side_effect() -> int:
    """Record that this attempt of this step ran; returns the attempt number."""
    ctx = perdure.current_step()
    assert ctx is not None, "side_effect() runs inside a step"
    app_execute(
        "INSERT INTO chaos_app.side_effects (run_id, correlation_id, step_name, attempt, pid)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (ctx.run_id, ctx.correlation_id, ctx.name, ctx.attempt, os.getpid()),
    )
    return ctx.attempt


# == steps and the workflow ====================================================
@step(name="chaos_seq", **RETRIES)
def seq_step(key: str, index: int) -> int:
    side_effect()
    return seq_value(key, index)


@step(name="chaos_fan", **RETRIES)
async def fan_step(key: str, index: int) -> int:
    attempt = side_effect()
    await asyncio.sleep(0)
    if index == 0 and attempt == 1 and flaky(key):
        raise RetryableError("a planned failure of the first attempt", retry_after=0.1)
    return fan_value(key, index)


@step(name="chaos_stream", **RETRIES)
def stream_step(key: str, count: int) -> int:
    """Write chunks 0..count-1, then EOF, resuming where an earlier attempt stopped.

    Chunks written by a failed attempt stay in the stream (docs/concepts.md), so an
    idempotent writer continues after the last chunk stored. A session advisory lock
    keeps two live attempts (a worker that outlived its lease) from writing at once.
    """
    side_effect()
    ctx = perdure.current_step()
    assert ctx is not None
    writer = get_writable(STREAM)
    with _connect() as lock:
        lock.execute("SET statement_timeout = '120s'")
        lock.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (ctx.run_id,))
        info = ctx.world.stream_info(ctx.run_id, STREAM)
        if not info.closed:
            for index in range(info.chunks, count):
                writer.write(chunk(key, index))
                if index % 25 == 0:
                    lock.execute("SELECT 1")  # still holding the lock?
            writer.close()
    return count


@workflow(name=WORKFLOW)
async def chaos_mixed(key: str) -> dict[str, Any]:
    total = 0
    for index in range(SEQUENTIAL):
        total += await seq_step(key, index)
    fan = await asyncio.gather(*(fan_step(key, j) for j in range(FAN_OUT)))
    await sleep(SLEEP_SECONDS)
    payload = await create_hook(token=hook_token(key))
    streamed = await stream_step(key, CHUNKS)
    return {"key": key, "total": total, "fan": list(fan), "payload": payload,
            "streamed": streamed}
