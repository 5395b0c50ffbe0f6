"""A running worker tidies the job queue as it finishes jobs (``_upkeep.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perdure import Engine
from perdure.testing import wait_for

from . import workflows as w


def test_a_worker_tidies_the_queue_as_jobs_finish(engine: Engine,
                                                  record_calls: Callable[..., list[Any]]) -> None:
    worker = engine.worker
    assert worker is not None
    tidyings = record_calls(engine.world, "tidy_queue")
    worker.upkeep.every = 4
    client = Engine(engine.url)  # runs started by another process go through the queue
    try:
        runs = [client.start(w.echo_wf, i) for i in range(10)]
        assert [r.result(timeout=30) for r in runs] == list(range(10))
    finally:
        client.shutdown()
    wait_for(lambda: worker.upkeep.tidied >= 2, timeout=10, what="two tidyings")
    assert len(tidyings) >= 2
