"""In-process wake-ups: watchers of a key prefix (``LocalNotifier.watch``), and the
chunks a stream's wake-up carries in the writer's process."""

from __future__ import annotations

from perdure.backends._notify import HELD_BYTES, LocalNotifier


def test_a_watcher_hears_the_keys_of_its_prefix_until_it_stops() -> None:
    notifier = LocalNotifier()
    heard: list[str] = []
    unwatch = notifier.watch("run:", heard.append)
    sub = notifier.subscribe("run:a")
    for key in ("run:a", "jobs", "stream:a:x", "run:b"):
        notifier.publish(key)
    assert heard == ["run:a", "run:b"]
    assert sub.wait(0)  # subscriptions are woken as before
    unwatch()
    unwatch()  # twice is fine
    notifier.publish("run:c")
    assert heard == ["run:a", "run:b"]


def test_a_failing_watcher_does_not_stop_the_wake_ups() -> None:
    notifier = LocalNotifier()
    heard: list[str] = []

    def broken(key: str) -> None:
        raise RuntimeError("watcher bug")

    notifier.watch("run:", broken)
    notifier.watch("run:", heard.append)
    sub = notifier.subscribe("run:a")
    notifier.publish("run:a")
    assert sub.wait(0) and heard == ["run:a"]


def test_chunks_come_with_their_wake_up_until_taken() -> None:
    notifier = LocalNotifier()
    sub = notifier.subscribe("stream:r:s")
    notifier.publish("stream:r:s", [(0, 0, b"a")])
    notifier.publish("stream:r:s", [(1, 0, b"b"), (2, 2, b"")])
    assert sub.wait(0)
    assert sub.take() == ([(0, 0, b"a"), (1, 0, b"b"), (2, 2, b"")], False)
    assert sub.take() == ([], False)


def test_a_wake_up_without_chunks_asks_for_a_query_and_keeps_the_chunks() -> None:
    notifier = LocalNotifier()
    sub = notifier.subscribe("stream:r:s")
    notifier.publish("stream:r:s", [(0, 0, b"a")])
    notifier.publish("stream:r:s")  # another process's write, through NOTIFY
    notifier.publish("stream:r:s", [(5, 0, b"f")])
    assert sub.take() == ([(0, 0, b"a"), (5, 0, b"f")], True)
    notifier.wake_all()  # after a reconnect
    assert sub.take() == ([], True)


def test_chunks_past_the_limit_are_dropped_for_a_query() -> None:
    notifier = LocalNotifier()
    sub = notifier.subscribe("stream:r:s")
    half = b"x" * (HELD_BYTES // 2)
    notifier.publish("stream:r:s", [(0, 0, half), (1, 0, half)])
    notifier.publish("stream:r:s", [(2, 0, b"y")])  # over the limit: the held go
    assert sub.take() == ([(2, 0, b"y")], True)
    notifier.publish("stream:r:s", [(3, 0, b"z" * (HELD_BYTES + 1))])
    assert sub.take() == ([], True)
