"""Run ids (``uuid7``): time-ordered, unique, and a forked child's never its parent's.

The random bits are drawn from ``os.urandom`` ahead of time, 256 ids' worth at a
time; these tests cross that boundary and a fork."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from perdure.world import _ids, uuid7


def _ms(run_id: str) -> int:
    return uuid.UUID(run_id).int >> 80


def test_ids_are_version_7_strictly_increasing_and_unique_across_refills() -> None:
    made = [uuid7() for _ in range(5 * _ids._POOL_IDS + 7)]
    assert made == sorted(made) and len(set(made)) == len(made)
    for run_id in made:
        value = uuid.UUID(run_id)
        assert value.version == 7 and value.variant == uuid.RFC_4122
    assert abs(_ms(made[-1]) - time.time_ns() // 1_000_000) < 5_000


def test_ids_made_on_many_threads_are_unique() -> None:
    made: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        ids = [uuid7() for _ in range(700)]
        with lock:
            made.extend(ids)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == len(made) == 8 * 700


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_random_bits() -> None:
    uuid7()  # the parent holds random bytes drawn ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without running the test's teardown
        try:
            os.write(write, " ".join(uuid7() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [uuid7() for _ in range(50)]
    assert len(child) == 50
    # the low 62 bits are the random ones: none of the child's is one of the parent's
    bits = {uuid.UUID(i).int & ((1 << 62) - 1) for i in parent}
    assert not bits & {uuid.UUID(i).int & ((1 << 62) - 1) for i in child}
