"""Layer 4: the storage backends. ``open_world`` picks one from a URL."""

from __future__ import annotations

import os

from ..world import World

DEFAULT_URL = "sqlite:///.perdure/perdure.db"


def resolve_url(url: str | None = None) -> str:
    """The explicit URL, else ``PERDURE_DATABASE_URL``, else the SQLite default."""
    return url or os.environ.get("PERDURE_DATABASE_URL") or DEFAULT_URL


def open_world(url: str | None = None, *, migrate: bool = True, listen: bool = True) -> World:
    """Open the backend named by ``url`` and (by default) bring its schema up to date.

    ``listen=False`` (Postgres): no LISTEN connection; waiters rely on their polls."""
    url = resolve_url(url)
    world: World
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresWorld

        world = PostgresWorld(url, listen=listen)
    elif url.startswith("sqlite:"):
        from .sqlite import SqliteWorld

        world = SqliteWorld(url)
    else:
        raise ValueError(f"unsupported database URL {url!r}: use postgresql://... or sqlite:///path")
    if migrate:
        world.migrate()
    return world
