"""Helpers for tests, perdure's own and its users': a throwaway Postgres, log checks."""

from ._postgres import PostgresServer, find_or_start_postgres
from ._replay_check import assert_replays_cleanly
from ._waiting import wait_for

__all__ = ["PostgresServer", "assert_replays_cleanly", "find_or_start_postgres", "wait_for"]
