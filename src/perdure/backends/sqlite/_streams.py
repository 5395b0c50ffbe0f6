"""Streams: per (run, stream) chunks at dense indexes from 0, closed by an EOF chunk.

The chunk table is the source of truth; a wake-up on ``stream:<run>:<name>`` only
tells readers to query again after the last index they delivered.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from ...errors import EntityConflictError, RunNotFoundError
from ...world import CHUNK_EOF, Chunk, CommittedChunk, StreamInfo
from . import _convert
from ._connection import Q, SqliteBase


def stream_key(run_id: str, stream: str) -> str:
    return f"stream:{run_id}:{stream}"


def close_run_streams(conn: sqlite3.Connection, run_id: str, now: float) -> list[str]:
    """Write EOF on every stream of the run that has none, in the caller's
    transaction; returns the names of the streams closed."""
    rows = conn.execute(Q["close_open_streams"], {"run_id": run_id, "now": now}).fetchall()
    return sorted(row["stream"] for row in rows)


def _tail(conn: sqlite3.Connection, run_id: str, stream: str) -> tuple[int, bool]:
    """(index of the last chunk or -1, whether the stream is closed)."""
    row = conn.execute(Q["stream_tail"], {"run_id": run_id, "stream": stream}).fetchone()
    if row is None:
        return -1, False
    return row["idx"], row["kind"] == CHUNK_EOF


class Streams(SqliteBase):
    def write_chunks(
        self, run_id: str, stream: str, chunks: Sequence[tuple[int, bytes]]
    ) -> int:
        now = time.time()
        written: list[CommittedChunk] = []
        with self._write() as conn:
            if conn.execute(Q["get_run"], {"run_id": run_id}).fetchone() is None:
                raise RunNotFoundError(run_id)
            last, closed = _tail(conn, run_id, stream)
            for kind, data in chunks:
                if closed:
                    raise EntityConflictError(f"stream {stream!r} of run {run_id} is closed")
                last += 1
                stored = bytes(data)
                params = {
                    "run_id": run_id, "stream": stream, "idx": last, "kind": kind,
                    "data": stored, "now": now,
                }
                conn.execute(Q["insert_chunk"], params)
                written.append((last, kind, stored))
                closed = kind == CHUNK_EOF
        if chunks:
            self._publish(stream_key(run_id, stream), written)
        return last

    def close_stream(self, run_id: str, stream: str) -> None:
        with self._write() as conn:
            if conn.execute(Q["get_run"], {"run_id": run_id}).fetchone() is None:
                raise RunNotFoundError(run_id)
            last, closed = _tail(conn, run_id, stream)
            if not closed:
                params = {
                    "run_id": run_id, "stream": stream, "idx": last + 1, "kind": CHUNK_EOF,
                    "data": b"", "now": time.time(),
                }
                conn.execute(Q["insert_chunk"], params)
        self._publish(stream_key(run_id, stream))

    def read_chunks(
        self, run_id: str, stream: str, *, start: int, limit: int = 1000
    ) -> list[Chunk]:
        params = {"run_id": run_id, "stream": stream, "start": start, "limit": limit}
        return [_convert.chunk(row) for row in self._rows("read_chunks", params)]

    def stream_info(self, run_id: str, stream: str) -> StreamInfo:
        row = self._row("stream_tail", {"run_id": run_id, "stream": stream})
        if row is None:
            return StreamInfo(run_id, stream, chunks=0, closed=False)
        closed = row["kind"] == CHUNK_EOF
        return StreamInfo(run_id, stream, chunks=row["idx"] + 1 - closed, closed=closed)

    def list_streams(self, run_id: str) -> list[StreamInfo]:
        return [
            StreamInfo(
                run_id,
                row["stream"],
                chunks=row["last_idx"] + 1 - bool(row["closed"]),
                closed=bool(row["closed"]),
            )
            for row in self._rows("list_streams", {"run_id": run_id})
        ]
