"""Keeping the job queue lean while a worker runs.

Why: on Postgres an acknowledged (deleted) job stays in the queue's indexes until
the table is vacuumed, and a claim scans those indexes in due order, walking past
every job deleted since the last vacuum. autovacuum visits a table at most once a
minute, and some servers run without it (this project's CI server does): at 1,500
jobs a second a claim went from 0.2 ms to 8 to 14 ms within a minute. So each worker
tidies the queue (``World.tidy_queue``: a vacuum of the jobs table, a few
milliseconds when done often) after every ``every`` jobs it finishes, on a thread
of its own so that no job waits for it.
"""

from __future__ import annotations

import logging
import threading

from .world import World

logger = logging.getLogger(__name__)

EVERY = 1000  # jobs finished by this worker between two tidyings


class QueueUpkeep:
    def __init__(self, world: World, every: int = EVERY) -> None:
        self.world = world
        self.every = every
        self.tidied = 0  # times done, for tests
        self._finished = 0
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="perdure-upkeep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._due.set()
        if self._thread.is_alive():
            self._thread.join()

    def finished(self, jobs: int = 1) -> None:
        """``jobs`` more jobs were acknowledged by this worker."""
        with self._lock:
            self._finished += jobs
            due = self._finished >= self.every
            if due:
                self._finished = 0
        if due:
            self._due.set()

    def _loop(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._stop.is_set():
                return
            try:
                self.world.tidy_queue()
                self.tidied += 1
            except Exception:  # noqa: BLE001 - the next round tries again
                logger.warning("tidying the job queue failed", exc_info=True)
