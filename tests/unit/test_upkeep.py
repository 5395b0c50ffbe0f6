"""The queue upkeep (``perdure._upkeep``): a worker tidies the job queue after every
``every`` jobs it finishes, on a thread of its own, and survives a failed tidying."""

from __future__ import annotations

import threading
from typing import Any

from perdure._upkeep import QueueUpkeep


class _World:
    def __init__(self, fail_first: bool = False) -> None:
        self.calls = 0
        self.called = threading.Semaphore(0)
        self.fail_first = fail_first

    def tidy_queue(self) -> None:
        self.calls += 1
        self.called.release()
        if self.fail_first and self.calls == 1:
            raise ConnectionError("the server went away")


def test_the_queue_is_tidied_after_every_n_finished_jobs() -> None:
    world = _World()
    upkeep = QueueUpkeep(world, every=10)  # type: ignore[arg-type]
    upkeep.start()
    try:
        upkeep.finished(9)
        assert not world.called.acquire(timeout=0.2)
        upkeep.finished(1)
        assert world.called.acquire(timeout=10)
        for _ in range(10):
            upkeep.finished()
        assert world.called.acquire(timeout=10)
    finally:
        upkeep.stop()
    assert world.calls == 2


def test_a_failed_tidying_is_tried_again_next_round() -> None:
    world: Any = _World(fail_first=True)
    upkeep = QueueUpkeep(world, every=1)
    upkeep.start()
    try:
        upkeep.finished()
        assert world.called.acquire(timeout=10)
        upkeep.finished()
        assert world.called.acquire(timeout=10)
    finally:
        upkeep.stop()
    assert (world.calls, upkeep.tidied) == (2, 1)
