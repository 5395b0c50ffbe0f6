"""The arguments of queued steps, for the worker that claims them.

A step that waits in the queue (a fan-out wider than the worker's free slots) is
claimed later, and its claimer needs the step's arguments, which are in the
step's ``step_created`` event. The worker that created the steps has those events
in hand when it commits them: it notes them here, and when it claims the steps
itself (the usual case: one worker runs a fan-out) it reads nothing. Any other
claimer reads the run's ``step_created`` events once, for all of the run's steps.

Why not always read: a ``gather`` of 100 steps on SQLite read the run's 100
``step_created`` rows up to five times per run (its step threads missed together)
and each read took 5 to 24 ms on a busy worker, its threads taking the GIL back at
every row, against 0.3 ms alone (``docs/performance.md``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ._serialization import decode
from .errors import EntityConflictError
from .world import Event, NewEvent, World

MAX_RUNS = 256  # runs whose step inputs are kept, least recently used first out


class StepInputs:
    def __init__(self, world: World, max_runs: int = MAX_RUNS) -> None:
        self.world = world
        self.max_runs = max_runs
        self.reads = 0  # runs whose step_created events were read (tests, benchmarks)
        self._runs: OrderedDict[str, dict[str, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, run_id: str, created: Sequence[NewEvent]) -> None:
        """``created``: committed ``step_created`` events of steps left in the queue."""
        self._keep(run_id, created)

    def args(self, run_id: str, cid: str) -> tuple[list[Any], dict[str, Any]]:
        """A queued step's arguments, decoded anew for each call (an attempt may
        mutate them); read from the run's log when not known here."""
        with self._lock:
            data = self._runs.get(run_id, {}).get(cid)
        if data is None:
            self.reads += 1
            self._keep(run_id, self.world.list_events(run_id, types=["step_created"]))
            with self._lock:
                data = self._runs.get(run_id, {}).get(cid)
        if data is None:
            raise EntityConflictError(f"run {run_id}: no step_created for {cid}")
        return decode(data.get("args") or []), decode(data.get("kwargs") or {})

    def _keep(self, run_id: str, created: Sequence[NewEvent | Event]) -> None:
        """Keep the data of these ``step_created`` events, by correlation id."""
        inputs = {e.correlation_id or "": e.data or {} for e in created}
        with self._lock:
            known = self._runs.setdefault(run_id, {})
            known.update(inputs)
            self._runs.move_to_end(run_id)
            while len(self._runs) > self.max_runs:
                self._runs.popitem(last=False)
