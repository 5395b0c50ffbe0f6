"""``perdure chaos``: the reliability run (the program lives in ``perdure.chaos``)."""

from __future__ import annotations

import click


@click.command()
@click.option("--short", "mode", flag_value="short", default=True,
              help="About 2 minutes: >= 200 runs, >= 20 kills, >= 50 drops, 1 restart "
                   "(the default; CI runs it).")
@click.option("--long", "mode", flag_value="long",
              help=">= 2,000 runs over >= 10 minutes.")
@click.option("--runs", type=click.IntRange(1), default=None,
              help="Start at least this many runs (and require them).")
@click.option("--duration", type=click.FloatRange(1), default=None,
              help="Keep starting runs for at least this many seconds.")
@click.option("--workers", type=click.IntRange(1, 16), default=3, show_default=True,
              help="Worker processes kept alive.")
@click.option("--seed", type=int, default=None,
              help="Seed of the fault schedule and the run keys (default: random, printed).")
@click.option("--keep", is_flag=True, help="Keep worker logs even when every check passes.")
@click.option("--summary-json", type=click.Path(dir_okay=False), default=None,
              help="Also write the summary as JSON to this file.")
def chaos(mode: str, runs: int | None, duration: float | None, workers: int, seed: int | None,
          keep: bool, summary_json: str | None) -> None:
    """Kill workers, drop connections and restart PostgreSQL under load, then check
    that no run, result, chunk or side effect was lost, duplicated or corrupted.

    Uses its own throwaway PostgreSQL cluster (initdb, pg_ctl); --database-url is
    ignored. Exits 1 when any check fails or a minimum of the mode is not met.
    """
    from ..chaos import ChaosConfig, render, run_chaos

    cfg = ChaosConfig.for_mode(mode, runs=runs, duration=duration, workers=workers, seed=seed,
                               keep=keep)
    summary = run_chaos(cfg, summary_json=summary_json)
    click.echo(render(summary))
    raise click.exceptions.Exit(0 if summary.passed else 1)


COMMANDS = [chaos]
