"""In-process wake-ups: watchers of a key prefix (``LocalNotifier.watch``)."""

from __future__ import annotations

from perdure.backends._notify import LocalNotifier


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
