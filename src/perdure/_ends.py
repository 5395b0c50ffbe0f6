"""Reading the ends of the runs a client started, several at a time.

Why: a client that starts many runs and then waits for each in turn (``result()``
in a loop) read one terminal event per run, one round trip each: at the end of a
batch of 3,000 one-step runs that was 0.3 s of reads one after another. So the
engine remembers the runs it started (a bounded set). The first time an end must
be read, the ends of all of them are read in that query; from then on the engine
hears which of them end (the wake-ups of ``run:<id>``), and each later read takes
along the ends of those heard ended. Ends read along are put on the ``Outcomes``
board, where their own ``result()`` finds them. A client that only starts runs
never listens.

Nothing depends on a wake-up arriving: one missed only means that run's end is
read on its own, as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from ._outcomes import Outcomes
from .world import Event, World

CAPACITY = 10_000  # runs remembered (started here, end not read yet)
PER_READ = 500     # ends read along with the one asked for, at most


class Ends:
    def __init__(self, world: World, outcomes: Outcomes) -> None:
        self.world = world
        self.outcomes = outcomes
        self._started: OrderedDict[str, None] = OrderedDict()  # end not heard yet
        self._ended: OrderedDict[str, None] = OrderedDict()    # heard ended, not read
        self._lock = threading.Lock()
        self._unwatch: Callable[[], None] | None = None

    def started(self, run_id: str) -> None:
        """``run_id`` was started by this client (call before its creation commits,
        so that its end cannot be heard before it is known)."""
        with self._lock:
            self._started[run_id] = None
            while len(self._started) > CAPACITY:
                self._started.popitem(last=False)

    def forget(self, run_id: str) -> None:
        """The start did not create ``run_id`` (it failed, or a key named another run)."""
        with self._lock:
            self._started.pop(run_id, None)

    def _heard(self, key: str) -> None:
        run_id = key[4:]  # "run:<id>"
        with self._lock:
            if run_id in self._started:
                del self._started[run_id]
                self._ended[run_id] = None
                while len(self._ended) > CAPACITY:
                    self._ended.popitem(last=False)

    def read(self, run_id: str) -> Event | None:
        """``run_id``'s terminal event if it has ended, with the ends of the runs
        heard ended meanwhile read in the same query (and put on the board)."""
        with self._lock:
            pool = self._ended
            if self._unwatch is None:  # the first read: every run started so far
                self._unwatch = self.world.notifier.watch("run:", self._heard)
                pool = self._started
            mine = run_id in self._started or run_id in self._ended
            self._started.pop(run_id, None)
            self._ended.pop(run_id, None)
            others = [pool.popitem(last=False)[0] for _ in range(min(len(pool), PER_READ))]
        ends = self.world.read_ends([run_id, *others])
        with self._lock:
            if mine and run_id not in ends:
                self._started[run_id] = None
            for other in others:
                if other not in ends:  # still running: its end will be heard
                    self._started[other] = None
        for other in others:
            if (event := ends.get(other)) is not None:
                self.outcomes.put(event)
        return ends.get(run_id)

    def close(self) -> None:
        with self._lock:
            unwatch, self._unwatch = self._unwatch, None
        if unwatch is not None:
            unwatch()
