"""``perdure bench``: the benchmark program (``perdure.bench``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import CliError


@click.command()
@click.option("--backend", type=click.Choice(["sqlite", "postgres", "both"]), default="both",
              show_default=True, help="Which perdure backend(s) to measure.")
@click.option("--database-url", default=None,
              help="Postgres to benchmark on (default: a fresh database perdure_bench on "
                   "postgresql://postgres@127.0.0.1:5432).")
@click.option("--iterations", type=click.IntRange(1), default=20, show_default=True,
              help="Timed iterations per shape at most (a 3 s budget per shape may stop "
                   "earlier, never below the shape's minimum).")
@click.option("--quick", is_flag=True, help="Few iterations, small shapes: a smoke test.")
@click.option("--shapes", "shape_filter", default=None,
              help="Comma-separated shape names or globs, e.g. 'no-step,seq-*'.")
@click.option("--compare", type=click.Choice(["dbos"]), default=None,
              help="Also run the shapes on DBOS (installed in --bench-venv).")
@click.option("--bench-venv", type=click.Path(path_type=Path), default=Path(".bench-venv"),
              show_default=True, help="Virtualenv for the comparison (made when missing).")
@click.option("--chart", type=click.Path(path_type=Path), default=None,
              help="Draw ms per step against sequential step count to this PNG.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write every sample and summary to this JSON file.")
@click.option("--from-json", type=click.Path(exists=True, path_type=Path), default=None,
              help="Measure nothing: print the tables (and --chart) of an earlier --json file.")
def bench(backend: str, database_url: str | None, iterations: int, quick: bool,
          shape_filter: str | None, compare: str | None, bench_venv: Path,
          chart: Path | None, json_path: Path | None, from_json: Path | None) -> None:
    """Measure workflow shapes start to result and print a table (Markdown)."""
    from ..bench import BenchOptions, Report, run

    if from_json is not None:
        report = Report.from_json(json.loads(from_json.read_text(encoding="utf-8")))
        click.echo(report.text())
        if chart is not None:
            report.chart(chart)
        return
    if database_url is not None and not database_url.startswith(("postgresql:", "postgres:")):
        raise CliError("--database-url is the Postgres to benchmark (postgresql://...)")
    options = BenchOptions(backend=backend, database_url=database_url, iterations=iterations,
                           quick=quick, shapes=shape_filter, compare=compare, chart=chart,
                           json_path=json_path, bench_venv=bench_venv)
    try:
        report = run(options)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    click.echo(report.text())
    if chart is not None:
        if report.chart(chart):
            click.echo(f"chart: {chart}", err=True)
        else:
            click.echo("no chart: matplotlib is missing (pip install 'perdure[bench]')", err=True)
    if json_path is not None:
        report.write_json(json_path)
        click.echo(f"json: {json_path}", err=True)


COMMANDS = [bench]
