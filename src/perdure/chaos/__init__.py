"""``perdure chaos``: prove under real faults that nothing is lost or corrupted.

A throwaway PostgreSQL cluster, worker processes running :mod:`.workload`, a load
of runs with live stream readers and hooks resumed from outside, and meanwhile
SIGKILLed workers, terminated connections and a restarted server; then checks of
every run, log, stream, side effect, job and connection. See docs/reliability.md.

Modules: ``workload`` (the app the workers load), ``_fleet`` (worker processes),
``_faults`` (the fault injector), ``_load`` (the load driver), ``_checks`` (the
checker), ``_program`` (the whole run and its summary).
"""

from ._program import ChaosConfig, Summary, render, run_chaos

__all__ = ["ChaosConfig", "Summary", "render", "run_chaos"]
