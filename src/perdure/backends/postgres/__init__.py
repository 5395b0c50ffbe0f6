"""The PostgreSQL backend: schema ``perdure``, SQL in ``sql/`` and ``migrations/``."""

from ._world import PostgresWorld

__all__ = ["PostgresWorld"]
