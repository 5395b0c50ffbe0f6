"""How long each step takes on this worker, to tell the short ones.

Why: an activation that creates one step commits the step's start, then the step
runs and its result commits: two transactions. When the step is known to be short,
the worker runs it first and commits its start, its result and the workflow's
advance together (``Advancer.activate``). Nothing completed waits on that: only the
``step_started`` row is later than usual, by the step's own short duration. Known
short means: at least ``MIN_SAMPLES`` attempts timed on this worker, with a moving
average and a latest time both under ``SHORT_SECONDS``. A step that got slow stops
counting as short after its first slow attempt.
"""

from __future__ import annotations

import threading

SHORT_SECONDS = 0.002
MIN_SAMPLES = 3
_WEIGHT = 0.2  # of the newest sample in the moving average


class StepTimes:
    def __init__(self, short_seconds: float = SHORT_SECONDS) -> None:
        self.short_seconds = short_seconds
        self._lock = threading.Lock()
        self._by_name: dict[str, tuple[int, float, float]] = {}  # name -> (n, average, last)

    def record(self, name: str, seconds: float) -> None:
        with self._lock:
            n, average, _ = self._by_name.get(name, (0, seconds, seconds))
            average = average + _WEIGHT * (seconds - average) if n else seconds
            self._by_name[name] = (n + 1, average, seconds)

    def is_short(self, name: str) -> bool:
        with self._lock:
            n, average, last = self._by_name.get(name, (0, 0.0, 0.0))
        return n >= MIN_SAMPLES and average < self.short_seconds and last < self.short_seconds
