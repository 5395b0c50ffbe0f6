"""Reads of the log and its projections, with cursor pagination.

Cursors are opaque strings: the sort key of the last item handed out (a run id;
the creation seq of a step or wait; ``[run id, seq]`` of a hook as JSON). Reads run
outside any transaction; each is one statement, so it sees one snapshot.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar

from ...world import Event, HookRecord, Page, RunRecord, StepRecord, WaitRecord
from . import _convert
from ._connection import Params, SqliteBase

T = TypeVar("T")


def read_events(db: SqliteBase, run_id: str, *, after_seq: int = 0, limit: int | None = None,
                types: Sequence[str] | None = None) -> list[Event]:
    """``list_events``' read, also for the logs a claim brings (``JobQueue``)."""
    params = {
        "run_id": run_id,
        "after_seq": after_seq,
        "limit": -1 if limit is None else limit,  # SQLite: a negative LIMIT is none
        "types": None if types is None else json.dumps(list(types)),
    }
    return [_convert.event(row) for row in db._rows("list_events", params)]


def _seq_cursor(cursor: str | None) -> int:
    try:
        return 0 if cursor is None else int(cursor)
    except ValueError:
        raise ValueError(f"bad cursor {cursor!r}") from None


def _seq_of(row: sqlite3.Row) -> str:
    return str(row["seq"])


def _hook_cursor(cursor: str | None) -> tuple[str, int]:
    if cursor is None:
        return "", 0
    try:
        run_id, seq = json.loads(cursor)
        return str(run_id), int(seq)
    except (ValueError, TypeError):
        raise ValueError(f"bad cursor {cursor!r}") from None


class Reads(SqliteBase):
    def _page(
        self,
        query: str,
        params: Params,
        limit: int,
        convert: Callable[[sqlite3.Row], T],
        cursor_of: Callable[[sqlite3.Row], str],
    ) -> Page[T]:
        """One more row than asked tells whether there is a next page."""
        if limit <= 0:
            raise ValueError("limit must be positive")
        rows = self._rows(query, {**params, "limit": limit + 1})
        if len(rows) <= limit:
            return Page([convert(row) for row in rows])
        rows = rows[:limit]
        return Page([convert(row) for row in rows], cursor_of(rows[-1]))

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._row("get_run", {"run_id": run_id})
        return None if row is None else _convert.run(row)

    def get_run_by_key(self, idempotency_key: str) -> RunRecord | None:
        row = self._row("get_run_by_key", {"key": idempotency_key})
        return None if row is None else _convert.run(row)

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[RunRecord]:
        """Newest first (ids are time-ordered). ``created_after``/``created_before``
        are strict bounds."""
        params = {"status": status, "workflow": workflow, "created_after": created_after,
                  "created_before": created_before, "cursor": cursor}
        return self._page("list_runs", params, limit, _convert.run, lambda row: str(row["id"]))

    def read_ends(self, run_ids: Sequence[str]) -> dict[str, Event]:
        if not run_ids:
            return {}
        rows = self._rows("read_ends", {"ids": json.dumps(list(dict.fromkeys(run_ids)))})
        return {row["run_id"]: _convert.event(row) for row in rows}

    def list_events(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        limit: int | None = None,
        types: Sequence[str] | None = None,
    ) -> list[Event]:
        return read_events(self, run_id, after_seq=after_seq, limit=limit, types=types)

    def list_steps(
        self, run_id: str, *, status: str | None = None, limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[StepRecord]:
        params = {"run_id": run_id, "status": status, "after_seq": _seq_cursor(cursor)}
        return self._page("list_steps", params, limit, _convert.step, _seq_of)

    def get_step(self, run_id: str, correlation_id: str) -> StepRecord | None:
        row = self._row("get_step", {"run_id": run_id, "cid": correlation_id})
        return None if row is None else _convert.step(row)

    def list_waits(
        self, run_id: str, *, status: str | None = None, limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[WaitRecord]:
        params = {"run_id": run_id, "status": status, "after_seq": _seq_cursor(cursor)}
        return self._page("list_waits", params, limit, _convert.wait, _seq_of)

    def list_hooks(
        self, *, run_id: str | None = None, status: str | None = None, limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[HookRecord]:
        after_run, after_seq = _hook_cursor(cursor)
        params = {"run_id": run_id, "status": status, "after_run": after_run,
                  "after_seq": after_seq}
        return self._page("list_hooks", params, limit, _convert.hook,
                          lambda row: json.dumps([row["run_id"], row["seq"]]))

    def get_hook_by_token(self, token: str) -> HookRecord | None:
        row = self._row("get_hook_by_token", {"token": token})
        return None if row is None else _convert.hook(row)
