"""Helpers for tests, perdure's own and its users': a throwaway Postgres, log checks."""

from ._postgres import PostgresServer, find_or_start_postgres

__all__ = ["PostgresServer", "find_or_start_postgres"]
