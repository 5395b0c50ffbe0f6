"""Engine shutdown ends the readers of its runs (last in the folder: a reader that
does not stop is a daemon thread that outlives its test)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from perdure import Engine

from . import stream_workflows as w
from ._support import Collector, subscriptions, wait_for, wait_for_hook


def test_engine_shutdown_stops_readers(backend_url: str) -> None:
    """A reader waiting for live chunks ends (EOF or error) when its engine shuts
    down, instead of retrying a closed World forever."""
    engine = Engine(backend_url, lease_seconds=5, concurrency=2).launch()
    reader = Engine(backend_url, poll_interval=0.2, migrate=False)
    try:
        token = f"shutdown-{uuid.uuid4()}"
        run = reader.get_run(engine.start(w.stream_then_hook, 10, token, 0).id)
        wait_for_hook(engine, token)
        sync_reader = Collector(run)
        sync_reader.wait_count(10)

        received: list[Any] = []

        async def read_async() -> list[Any]:
            async for item in run.stream_async():
                received.append(item)
            return received

        loop = asyncio.new_event_loop()
        outcome: list[object] = []

        def run_async_reader() -> None:
            try:
                outcome.append(loop.run_until_complete(asyncio.wait_for(read_async(), 15)))
            except BaseException as exc:  # noqa: BLE001 - EOF or an error both end it
                outcome.append(exc)

        async_reader = threading.Thread(target=run_async_reader,
                                        name="stream-test-async-reader", daemon=True)
        async_reader.start()
        wait_for(lambda: len(received) == 10 and subscriptions(reader) >= 2,
                 what="both readers waiting for live chunks")
    finally:
        reader.shutdown(timeout=5)
        engine.shutdown(timeout=5)
    try:
        assert sync_reader.done.wait(10), "the sync reader still runs after shutdown"
        async_reader.join(5)
        assert not async_reader.is_alive(), "the async reader still runs after shutdown"
        assert not isinstance(outcome[0], TimeoutError), "the async reader ran until timeout"
    finally:
        if not async_reader.is_alive():
            loop.close()
