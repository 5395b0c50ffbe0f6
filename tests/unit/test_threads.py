"""The worker's task threads (``_threads.py``): tasks run, up to ``size`` at once,
threads are reused, a failing task is logged, and a shutdown drops what waits."""

from __future__ import annotations

import logging
import threading

import pytest

from perdure._threads import TaskThreads

TIMEOUT = 10.0


def test_tasks_run_side_by_side_up_to_size() -> None:
    threads = TaskThreads(3, "t")
    barrier = threading.Barrier(3, timeout=TIMEOUT)  # broken unless three run at once
    passed: list[int] = []
    done = threading.Semaphore(0)

    def task(i: int) -> None:
        barrier.wait()
        passed.append(i)
        done.release()

    for i in range(3):
        threads.submit(task, i)
    for _ in range(3):
        assert done.acquire(timeout=TIMEOUT)
    assert sorted(passed) == [0, 1, 2]
    threads.shutdown()


def test_no_more_threads_than_size_and_every_task_runs() -> None:
    threads = TaskThreads(2, "t")
    release = threading.Event()
    names: list[str] = []
    done = threading.Semaphore(0)

    def task() -> None:
        release.wait(TIMEOUT)
        names.append(threading.current_thread().name)
        done.release()

    for _ in range(10):
        threads.submit(task)
    release.set()
    for _ in range(10):
        assert done.acquire(timeout=TIMEOUT)
    assert len(names) == 10
    assert len(set(names)) == 2
    threads.shutdown()


def test_an_idle_thread_takes_the_next_task() -> None:
    threads = TaskThreads(8, "t")
    names: list[str] = []
    for _ in range(5):
        done = threading.Event()
        threads.submit(lambda d=done: (names.append(threading.current_thread().name), d.set()))
        assert done.wait(TIMEOUT)
    assert len(set(names)) == 1
    threads.shutdown()


def test_a_failing_task_is_logged_and_the_thread_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    threads = TaskThreads(1, "t")
    done = threading.Event()

    def fail() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="perdure._threads"):
        threads.submit(fail)
        threads.submit(done.set)
        assert done.wait(TIMEOUT)
    assert any("a task of t failed" in r.getMessage() and r.exc_info for r in caplog.records)
    threads.shutdown()


def test_shutdown_drops_waiting_tasks_and_ends_the_threads() -> None:
    threads = TaskThreads(1, "t")
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def first() -> None:
        started.set()
        release.wait(TIMEOUT)
        ran.append("first")

    threads.submit(first)
    assert started.wait(TIMEOUT)
    threads.submit(ran.append, "queued")
    threads.shutdown()
    threads.submit(ran.append, "after")
    release.set()
    [thread] = threads._threads
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert ran == ["first"]


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TaskThreads(0, "t")
