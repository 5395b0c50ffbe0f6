"""The batcher (``perdure._batcher``): a lone write goes alone, writes that queue
behind a commit in flight go together in key order, a refused batch is written
again one by one, and no writer is ever left waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from perdure._batcher import Batcher
from perdure.errors import EntityConflictError


class Store:
    """A stand-in for a World's writes: records each call; the first call can be
    held until ``release`` so that the writes after it queue up."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self._hold = hold_first
        self.refuse: set[str] = set()
        self.fail_many: BaseException | None = None
        self._lock = threading.Lock()

    def _maybe_hold(self) -> None:
        with self._lock:
            hold, self._hold = self._hold, False
        if hold:
            self.entered.set()
            assert self.release.wait(10)

    def one(self, request: str) -> str:
        self._maybe_hold()
        self.calls.append(("one", [request]))
        if request in self.refuse:
            raise EntityConflictError(f"{request} refused")
        return request.upper()

    def many(self, requests: list[str]) -> list[str]:
        self._maybe_hold()
        self.calls.append(("many", list(requests)))
        if self.fail_many is not None:
            raise self.fail_many
        if self.refuse & set(requests):
            raise EntityConflictError("a request of the batch was refused")
        return [r.upper() for r in requests]


def _batcher(store: Store, **kwargs: Any) -> Batcher[str, str]:
    return Batcher(store.one, store.many, key=lambda r: r, **kwargs)


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _queue_behind(batcher: Batcher[str, str], store: Store,
                  requests: list[str]) -> dict[str, Any]:
    """``requests[0]`` is written while the others queue behind it; returns each
    request's answer (its result or the exception it raised)."""
    answers: dict[str, Any] = {}

    def write(request: str) -> None:
        try:
            answers[request] = batcher(request)
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            answers[request] = exc

    first = threading.Thread(target=write, args=(requests[0],))
    first.start()
    assert store.entered.wait(10)
    others = [threading.Thread(target=write, args=(r,)) for r in requests[1:]]
    for t in others:
        t.start()
    _until(lambda: len(batcher._queue) == len(others))
    store.release.set()
    for t in [first, *others]:
        t.join(10)
        assert not t.is_alive(), "a writer is stranded"
    return answers


def test_a_lone_write_goes_alone() -> None:
    store = Store()
    batcher = _batcher(store)
    assert batcher("a") == "A"
    assert batcher("b") == "B"
    assert store.calls == [("one", ["a"]), ("one", ["b"])]
    assert batcher.batches == 0


def test_writes_queued_behind_a_commit_go_together_in_key_order() -> None:
    store = Store(hold_first=True)
    batcher = _batcher(store)
    answers = _queue_behind(batcher, store, ["m", "z", "b", "k"])
    assert answers == {"m": "M", "z": "Z", "b": "B", "k": "K"}
    assert store.calls == [("one", ["m"]), ("many", ["b", "k", "z"])]
    assert batcher.batches == 1


def test_a_batch_holds_at_most_max_batch_writes() -> None:
    store = Store(hold_first=True)
    batcher = _batcher(store, max_batch=2)
    answers = _queue_behind(batcher, store, ["a", "b", "c", "d", "e"])
    assert answers == {r: r.upper() for r in "abcde"}
    assert [kind for kind, _ in store.calls] == ["one", "many", "many"]
    assert sorted(r for _, batch in store.calls for r in batch) == list("abcde")


def test_a_refused_batch_is_written_again_one_by_one() -> None:
    store = Store(hold_first=True)
    store.refuse = {"c"}
    batcher = _batcher(store)
    answers = _queue_behind(batcher, store, ["a", "b", "c", "d"])
    assert isinstance(answers["c"], EntityConflictError)
    assert {r: answers[r] for r in "abd"} == {"a": "A", "b": "B", "d": "D"}
    assert store.calls[1] == ("many", ["b", "c", "d"])
    assert sorted(r for kind, [r] in store.calls[2:] if kind == "one") == ["b", "c", "d"]


def test_any_other_error_of_a_batch_reaches_each_of_its_writers() -> None:
    store = Store(hold_first=True)
    store.fail_many = ConnectionError("the connection dropped mid-commit")
    batcher = _batcher(store)
    answers = _queue_behind(batcher, store, ["a", "b", "c"])
    assert answers["a"] == "A"
    assert answers["b"] is answers["c"] is store.fail_many
    assert [kind for kind, _ in store.calls] == ["one", "many"]  # not written again


def test_max_inflight_lets_that_many_go_alone_at_once() -> None:
    store = Store(hold_first=True)
    batcher = _batcher(store, max_inflight=2)
    done = threading.Event()
    first = threading.Thread(target=lambda: batcher("a"))
    first.start()
    assert store.entered.wait(10)
    second = threading.Thread(target=lambda: (batcher("b"), done.set()))
    second.start()
    assert done.wait(10), "the second write waited for the first"
    store.release.set()
    first.join(10)
    second.join(10)
    assert sorted(store.calls) == [("one", ["a"]), ("one", ["b"])]


@pytest.mark.parametrize("max_inflight", [1, 2])
def test_many_writers_each_get_their_own_answer(max_inflight: int) -> None:
    store = Store()
    store.refuse = {f"t3-{i}" for i in range(0, 200, 7)}
    batcher = _batcher(store, max_inflight=max_inflight)
    wrong: list[str] = []

    def writer(t: int) -> None:
        for i in range(200):
            request = f"t{t}-{i}"
            try:
                answer = batcher(request)
                if answer != request.upper() or request in store.refuse:
                    wrong.append(request)
            except EntityConflictError:
                if request not in store.refuse:
                    wrong.append(request)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a writer is stranded"
    assert wrong == []
    written = [r for kind, batch in store.calls for r in batch
               if kind == "one" or not store.refuse & set(batch)]
    assert sorted(written) == sorted(f"t{t}-{i}" for t in range(8) for i in range(200))
