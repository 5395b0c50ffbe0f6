"""Reads: listings (filters and cursor pagination of runs, steps, waits and hooks)
and the ends of many runs at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perdure.world import Page, World, uuid7

from ._support import ev, new_run

T0 = 1_700_000_000.0


def _all_pages(fetch: Callable[[str | None], Page[Any]]) -> list[Any]:
    """Walk every page; a cursor must never repeat or skip an item."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(1000):
        page = fetch(cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        assert page.items, "a page with a next cursor is not empty"
        cursor = page.next_cursor
    raise AssertionError("pagination never ended")


def test_list_runs(world: World) -> None:
    ids = []
    for i in range(23):
        run_id = uuid7()
        world.create_run("even" if i % 2 == 0 else "odd", "{}", run_id=run_id,
                         created_at=T0 + i)
        if i % 3 == 0:
            world.append(run_id, [ev("run_started"), ev("run_completed")])
        ids.append(run_id)
    newest_first = ids[::-1]
    runs = _all_pages(lambda c: world.list_runs(limit=5, cursor=c))
    assert [r.id for r in runs] == newest_first
    assert [r.id for r in world.list_runs().items] == newest_first
    first = world.list_runs(limit=23)
    assert len(first.items) == 23 and first.next_cursor is None

    def check(expected: list[int], **filters: Any) -> None:
        got = _all_pages(lambda c: world.list_runs(limit=4, cursor=c, **filters))
        assert [r.id for r in got] == [ids[i] for i in sorted(expected, reverse=True)], filters

    check([i for i in range(23) if i % 3 == 0], status="completed")
    check([i for i in range(23) if i % 3 != 0], status="pending")
    check([i for i in range(23) if i % 2 == 0], workflow="even")
    check([i for i in range(23) if i % 2 == 1 and i % 3 == 0], workflow="odd", status="completed")
    check(list(range(10, 23)), created_after=T0 + 9.5)
    check(list(range(0, 5)), created_before=T0 + 4.5)
    check([6, 8, 10, 12], created_after=T0 + 5.5, created_before=T0 + 12.5, workflow="even")
    check([], workflow="nothing")
    assert world.list_runs(status="failed").items == []


def test_list_steps(world: World) -> None:
    run_id = new_run(world)
    other = new_run(world)
    world.append(other, [ev("step_created", "zz")])
    # Creation order, not the order of correlation ids.
    cids = [f"s{(i * 7) % 25:02d}" for i in range(25)]
    world.append(run_id, [ev("step_created", c, name=f"n{c}") for c in cids])
    world.append(run_id, [ev("step_started", c) for c in cids[::2]])
    steps = _all_pages(lambda c: world.list_steps(run_id, limit=4, cursor=c))
    assert [s.correlation_id for s in steps] == cids
    assert [s.name for s in steps] == [f"n{c}" for c in cids]
    running = _all_pages(lambda c: world.list_steps(run_id, status="running", limit=3, cursor=c))
    assert [s.correlation_id for s in running] == cids[::2]
    pending = world.list_steps(run_id, status="pending").items
    assert [s.correlation_id for s in pending] == cids[1::2]
    assert world.list_steps(uuid7()).items == []


def test_list_waits(world: World) -> None:
    run_id = new_run(world)
    cids = [f"w{(i * 3) % 10}" for i in range(10)]
    world.append(run_id, [ev("wait_created", c, resume_at=T0 + i) for i, c in enumerate(cids)])
    world.append(run_id, [ev("wait_completed", c) for c in cids[:4]])
    waits = _all_pages(lambda c: world.list_waits(run_id, limit=3, cursor=c))
    assert [w.correlation_id for w in waits] == cids
    assert [w.resume_at for w in waits] == [T0 + i for i in range(10)]
    done = _all_pages(lambda c: world.list_waits(run_id, status="completed", limit=3, cursor=c))
    assert [w.correlation_id for w in done] == cids[:4]
    assert [w.correlation_id for w in world.list_waits(run_id, status="waiting").items] == cids[4:]


def test_list_hooks(world: World) -> None:
    runs = [new_run(world) for _ in range(3)]
    expected: dict[str, list[str]] = {}
    for n, run_id in enumerate(runs):
        cids = [f"h{(i * 5) % 8}" for i in range(8)]
        world.append(run_id, [ev("hook_created", c) for c in cids])
        world.append(run_id, [ev("hook_disposed", c) for c in cids[: n + 1]])
        expected[run_id] = cids
    for run_id, cids in expected.items():
        hooks = _all_pages(lambda c, r=run_id: world.list_hooks(run_id=r, limit=3, cursor=c))
        assert [h.correlation_id for h in hooks] == cids
    everything = _all_pages(lambda c: world.list_hooks(limit=5, cursor=c))
    assert sorted((h.run_id, h.correlation_id) for h in everything) == sorted(
        (r, c) for r, cids in expected.items() for c in cids)
    disposed = _all_pages(lambda c: world.list_hooks(status="disposed", limit=2, cursor=c))
    assert len(disposed) == 1 + 2 + 3
    assert all(h.status == "disposed" and h.disposed_at is not None for h in disposed)
    active = world.list_hooks(run_id=runs[0], status="active").items
    assert [h.correlation_id for h in active] == expected[runs[0]][1:]
    for hook in active:
        assert world.get_hook_by_token(hook.token) == hook


def test_read_ends(world: World) -> None:
    done, failed, cancelled, running = (new_run(world) for _ in range(4))
    world.append(done, [ev("run_completed", output=1)])
    world.append(failed, [ev("run_failed", error={"type": "E", "message": "m"})])
    world.append(cancelled, [ev("step_created", "s1"), ev("run_cancelled")])
    ends = world.read_ends([done, failed, cancelled, running, uuid7(), done])
    assert set(ends) == {done, failed, cancelled}
    for run_id, kind in ((done, "run_completed"), (failed, "run_failed"),
                         (cancelled, "run_cancelled")):
        assert ends[run_id] == world.list_events(run_id)[-1]
        assert ends[run_id].event_type == kind
    assert world.read_ends([]) == {}
