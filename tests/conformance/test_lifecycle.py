"""Opening, migrating, registering workflows and closing a World."""

from __future__ import annotations

import threading
from pathlib import Path

from perdure.backends import open_world
from perdure.world import World

from ._support import ev, new_run


def test_the_world_is_a_world(world: World) -> None:
    assert isinstance(world, World)
    assert isinstance(world.url, str) and world.url


def test_migrate_is_idempotent(world: World) -> None:
    version = world.migrate()
    assert version >= 1
    assert world.migrate() == version


def test_concurrent_migrations(backend_url: str) -> None:
    """Several processes starting at once all migrate one fresh database."""
    worlds = [open_world(backend_url, migrate=False) for _ in range(4)]
    versions: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(worlds))

    def migrate(w: World) -> None:
        try:
            barrier.wait()
            versions.append(w.migrate())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(w,)) for w in worlds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert len(versions) == len(worlds) and len(set(versions)) == 1
        run_id = new_run(worlds[0])
        assert worlds[1].get_run(run_id) is not None
    finally:
        for w in worlds:
            w.close()


def test_register_workflows(world: World) -> None:
    assert world.registered_workflows() == []
    world.register_workflows(["refunds", "orders"])
    world.register_workflows(["orders", "audit"])  # seen again: fine
    world.register_workflows([])
    assert world.registered_workflows() == ["audit", "orders", "refunds"]


def test_data_outlives_the_world(backend_url: str) -> None:
    first = open_world(backend_url)
    run_id = new_run(first)
    first.append(run_id, [ev("step_created", "s")])
    first.close()
    second = open_world(backend_url)
    try:
        assert second.get_run(run_id).last_seq == 3
        assert second.get_step(run_id, "s") is not None
    finally:
        second.close()


def test_threads_share_one_world(world: World) -> None:
    run_id = new_run(world)
    errors: list[BaseException] = []

    def create(n: int) -> None:
        try:
            for i in range(20):
                world.create_event(run_id, ev("step_created", f"t{n}-{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert world.get_run(run_id).last_seq == 2 + 80
    assert len(world.list_steps(run_id).items) == 80


def test_the_suite_calls_every_world_method() -> None:
    """Keeps this suite complete as the contract grows."""
    files = Path(__file__).parent.glob("*.py")
    source = "".join(path.read_text(encoding="utf-8") for path in files)
    methods = [name for name in dir(World)
               if not name.startswith("_") and callable(getattr(World, name))]
    assert len(methods) >= 25
    assert [name for name in methods if f".{name}(" not in source] == []
