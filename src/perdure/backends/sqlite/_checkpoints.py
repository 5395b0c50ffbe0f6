"""WAL checkpoints in a thread of their own, not in the commit that crosses the line.

Why: in WAL mode a checkpoint copies the pages the log holds back into the
database file and syncs it. SQLite's automatic checkpoint runs inside the COMMIT
of the writer whose commit takes the log past its threshold: that writer, and every
writer queued behind it, waits for the copy and the sync. In a bench run a live
stream's chunk waited 267 ms for one, against 0.4 ms typically, and the 91 chunks
written behind it arrived late in a row.

A PASSIVE checkpoint from another connection runs beside the writers: they keep
appending to the log while it copies. This thread runs one whenever the log has
grown past the threshold (the writers nudge it every few commits; they truncate the
log's file back to the threshold whenever the log restarts, so a file longer than
that holds a log longer than that).
The log restarts from its beginning only at a write that begins with every frame
copied, so after passes beside the writers, each copying what they wrote during
the one before, a last one copies the few frames left while this process's
writers are held back (the file's write lock): a short wait for a few pages,
instead of a long one for all of them. The writers keep SQLite's
automatic checkpoint too, at four times the threshold: a safety net should this
thread fall behind (other processes' writers, long readers), never the usual path.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

logger = logging.getLogger("perdure.sqlite")

NUDGE_EVERY = 32  # commits between two looks at the log
IDLE_LOOK_S = 1.0  # and at least this often while the writers are quiet
SAFETY_FACTOR = 4  # the writers' own automatic checkpoint, in thresholds
CATCH_UP_FRAMES = 256  # at most this much (1 MiB of pages) copied with writers held,
MAX_PASSES = 8  # after at most this many passes beside them


class Checkpointer:
    """Checkpoints ``path``'s write-ahead log once it holds ``threshold`` bytes."""

    def __init__(self, path: Path, threshold: int, write_lock: threading.RLock) -> None:
        self.path = path
        self.threshold = threshold
        self._write_lock = write_lock
        self.checkpoints = 0  # run by this thread, for tests
        self._wal = Path(f"{path}-wal")
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._checked = (0, 0)  # the log file after the last checkpoint
        self._commits = 0

    def committed(self) -> None:
        """A writer committed (called under the write lock, after the commit): every
        ``NUDGE_EVERY`` commits, look at the log."""
        self._commits += 1
        if self._commits % NUDGE_EVERY == 0:
            self.nudge()

    def nudge(self) -> None:
        """Look at the log's size soon (starts the thread)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed:
                    thread = threading.Thread(
                        target=self._run, name="perdure-sqlite-checkpoint", daemon=True)
                    try:
                        thread.start()
                    except RuntimeError:  # no thread to be had: the safety net stays
                        logger.warning("no background checkpoints for %s", self.path,
                                       exc_info=True)
                        self._closed = True
                        return
                    self._thread = thread
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:  # the writers' own automatic checkpoint still bounds the log
            logger.warning("no background checkpoints for %s", self.path, exc_info=True)
            return
        try:
            while True:
                self._wake.wait(IDLE_LOOK_S)
                self._wake.clear()
                if self._closed:
                    return
                seen = self._log_file()  # as it was: no write since the last checkpoint
                if seen[0] > self.threshold and seen != self._checked:
                    self._checkpoint(conn)
        finally:
            conn.close()

    def _log_file(self) -> tuple[int, int]:
        """The log file's size (past the threshold, the log's length) and change
        time. Only stat it: opening and closing a file of the database here would
        drop every POSIX lock this process's SQLite connections hold on it, which
        corrupts the database (https://sqlite.org/howtocorrupt.html, 2.2)."""
        try:
            stat = os.stat(self._wal)
        except FileNotFoundError:
            return 0, 0
        return stat.st_size, stat.st_mtime_ns

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            frames = _passive(conn)  # the bulk, beside the writers
            for _ in range(MAX_PASSES):  # what they wrote meanwhile, while it is much
                more = _passive(conn)
                if more - frames < CATCH_UP_FRAMES:
                    break
                frames = more
            with self._write_lock:  # the rest, no write half done: the next restarts the log
                _passive(conn)
            self.checkpoints += 1
            self._checked = self._log_file()
        except sqlite3.Error:  # another process's checkpoint, a closing database: next time
            logger.debug("background checkpoint of %s skipped", self.path, exc_info=True)


def _passive(conn: sqlite3.Connection) -> int:
    """A PASSIVE checkpoint; the frames in the log."""
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[1])
