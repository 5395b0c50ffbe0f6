"""The SQLite backend: ``SqliteWorld``, opened by ``open_world("sqlite:///path.db")``."""

from ._world import SqliteWorld

__all__ = ["SqliteWorld"]
