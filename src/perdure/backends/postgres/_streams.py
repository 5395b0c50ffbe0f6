"""Streams: per (run, stream) chunks at dense indexes from 0, closed by an EOF chunk.

The chunk table is the source of truth. NOTIFY ``stream:<run>:<name>`` (sent by
``perdure._stream_append`` at commit) only tells readers to query again after the
last index they delivered; the listener wakes every reader after a reconnect, and
readers poll as well, so a lost notification delays a chunk, never loses it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...world import CHUNK_EOF, Chunk, StreamInfo
from . import _convert
from ._base import PostgresBase
from ._db import Retry


def stream_key(run_id: str, stream: str) -> str:
    return f"stream:{run_id}:{stream}"


def _info(run_id: str, stream: str, last_idx: int, kind: int) -> StreamInfo:
    closed = kind == CHUNK_EOF
    return StreamInfo(run_id, stream, chunks=last_idx + 1 - closed, closed=closed)


class Streams(PostgresBase):
    def write_chunks(self, run_id: str, stream: str, chunks: Sequence[tuple[int, bytes]]) -> int:
        kinds = [kind for kind, _ in chunks]
        datas = [bytes(data) for _, data in chunks]
        row = self._db.one(
            "write_chunks", (run_id, stream, kinds, datas), retry=Retry.IF_NOT_RUN
        )
        assert row is not None
        last = int(row[0])
        if chunks:
            first = last - len(chunks) + 1
            written = [(first + i, kinds[i], datas[i]) for i in range(len(chunks))]
            self.notifier.publish(stream_key(run_id, stream), written)
        return last

    def close_stream(self, run_id: str, stream: str) -> None:
        self._db.run("close_stream", (run_id, stream))  # idempotent: retried freely
        self.notifier.publish(stream_key(run_id, stream))

    def read_chunks(
        self, run_id: str, stream: str, *, start: int, limit: int = 1000
    ) -> list[Chunk]:
        if start < 0:  # counts back from the tail (data chunks; EOF excluded)
            start = max(0, self.stream_info(run_id, stream).chunks + start)
        rows = self._db.all("read_chunks", (run_id, stream, start, limit), binary=True)
        return [_convert.chunk(row) for row in rows]

    def stream_info(self, run_id: str, stream: str) -> StreamInfo:
        row = self._db.one("stream_tail", (run_id, stream))
        if row is None:
            return StreamInfo(run_id, stream, chunks=0, closed=False)
        return _info(run_id, stream, row[0], row[1])

    def list_streams(self, run_id: str) -> list[StreamInfo]:
        rows = self._db.all("list_streams", {"run_id": run_id})
        return [_info(run_id, name, idx, kind) for name, idx, kind in rows]
