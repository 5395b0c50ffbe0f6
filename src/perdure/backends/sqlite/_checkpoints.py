"""WAL checkpoints in a thread of their own, not in the commit that crosses the line.

Why: in WAL mode a checkpoint copies the pages the log holds back into the
database file and syncs it. SQLite's automatic checkpoint runs inside the COMMIT
of the writer whose commit takes the log past its threshold: that writer, and every
writer queued behind it, waits for the copy and the sync. In a bench run a live
stream's chunk waited 267 ms for one, against 0.4 ms typically, and the 91 chunks
written behind it arrived late in a row.

A PASSIVE checkpoint from another connection runs beside the writers: they keep
appending to the log while it copies. This thread runs one whenever the log holds
more than the threshold not yet copied (the writers nudge it every few commits; it
reads that from the WAL-index header in the ``-shm`` file, a documented format:
https://sqlite.org/walformat.html). The log restarts from its beginning only at a
write that begins with every frame copied, so a second checkpoint copies what the
writers wrote during the first while this process's writers are held back (the
file's write lock): a short wait for a few pages, instead of a long one for all of
them. The writers keep SQLite's automatic checkpoint too, at four times the
threshold: a safety net should this thread fall behind (other processes' writers,
long readers), never the usual path.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import threading
from pathlib import Path

logger = logging.getLogger("perdure.sqlite")

NUDGE_EVERY = 32  # commits between two looks at the log
IDLE_LOOK_S = 1.0  # and at least this often while the writers are quiet
SAFETY_FACTOR = 4  # the writers' own automatic checkpoint, in thresholds


class Checkpointer:
    """Checkpoints ``path``'s write-ahead log once it holds ``threshold`` bytes not
    yet copied."""

    def __init__(self, path: Path, threshold: int, write_lock: threading.RLock) -> None:
        self.path = path
        self.threshold = threshold
        self._write_lock = write_lock
        self.checkpoints = 0  # run by this thread, for tests
        self._shm = Path(f"{path}-shm")
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def nudge(self) -> None:
        """A writer committed: look at the log's size soon (starts the thread)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(
                        target=self._run, name="perdure-sqlite-checkpoint", daemon=True)
                    self._thread.start()
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wake.wait(IDLE_LOOK_S)
                self._wake.clear()
                if self._closed:
                    return
                if self._uncopied_bytes() >= self.threshold:
                    self._checkpoint(conn)
        finally:
            conn.close()

    def _uncopied_bytes(self) -> int:
        """Bytes of log frames not yet copied to the database: the header's mxFrame
        (offset 16) less the checkpoint's nBackfill (offset 96), native byte order,
        times the page size (offset 14, 1 meaning 65536)."""
        try:
            with open(self._shm, "rb") as fh:
                header = fh.read(100)
        except FileNotFoundError:
            return 0
        if len(header) < 100:
            return 0
        page: int = struct.unpack_from("=H", header, 14)[0]
        frames: int = struct.unpack_from("=I", header, 16)[0]
        copied: int = struct.unpack_from("=I", header, 96)[0]
        return max(frames - copied, 0) * (65536 if page == 1 else page)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # the bulk, beside them
            with self._write_lock:  # what they wrote meanwhile; no write is half done
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error:  # another process's checkpoint, a closing database: next time
            logger.debug("background checkpoint of %s skipped", self.path, exc_info=True)
