"""Keeping the leases of in-flight jobs alive, and noticing cancelled runs.

Every ``lease / 3`` seconds the heartbeat renews the leases this worker holds. A
lease it failed to renew (the worker stalled past expiry and another worker took
the job) is only logged: whatever this worker then commits is checked by the
event log's transition rules, so a result is still recorded once.

A job is reported lost only when another worker holds it now. A job missing from
the renewal is most often one this worker has just acknowledged: its commit ran
between the heartbeat's list of held jobs and the renewal, and the worker has not
yet struck it from the list. Such a job is gone from the queue, so it is looked up
(one query per run, only for the jobs not renewed) before any warning.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .world import World

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, world: World, worker_id: str, lease_seconds: float,
                 held: Callable[[], dict[int, str]], on_tick: Callable[[], None]) -> None:
        self.world = world
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self._held = held
        self._on_tick = on_tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="perdure-heartbeat", daemon=True)
        self.lost = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        interval = max(0.05, self.lease_seconds / 3)
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a dropped connection must not end the heartbeat
                logger.warning("lease renewal failed; will retry", exc_info=True)

    def beat(self) -> None:
        held = self._held()
        if held:
            renewed = set(self.world.extend_leases(self.worker_id, list(held),
                                                   self.lease_seconds))
            lost = self._taken({job: run for job, run in held.items() if job not in renewed})
            if lost:
                self.lost += len(lost)
                logger.warning("lost the lease of jobs %s", lost, extra={"jobs": lost})
        self._on_tick()

    def _taken(self, missed: dict[int, str]) -> list[int]:
        """Of the jobs not renewed, those still held here that another worker holds
        now (the rest were acknowledged, or released, meanwhile)."""
        still = self._held()  # one look: a job acked since the renewal is gone from it
        missed = {job: run for job, run in missed.items() if job in still}
        taken = []
        for run_id in sorted(set(missed.values())):
            taken += [job.id for job in self.world.list_jobs(run_id=run_id)
                      if job.id in missed and job.claimed_by not in (None, self.worker_id)]
        return sorted(taken)
