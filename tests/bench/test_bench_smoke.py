"""`perdure bench --quick` runs through the CLI and prints its table.

A smoke test only: it never looks at the timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from perdure.backends.postgres import PostgresWorld
from perdure.bench import Report
from perdure.bench._measure import Result

SHAPES = ("no-step", "seq-10", "gather-10", "race-10", "payload-seq-10", "stream-ttfc")


def test_quick_bench_prints_the_table(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PERDURE_DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "perdure.cli", "bench", "--quick", "--backend", "sqlite",
         "--shapes", ",".join(SHAPES), "--json", str(out_json)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "### perdure (SQLite)" in out
    assert "| shape" in out and "median ms" in out and "p95 ms" in out and "ms/step" in out
    for shape in SHAPES:
        row = next((line for line in out.splitlines() if line.startswith(f"| {shape} ")), None)
        assert row is not None, f"no row for {shape}:\n{out}"
        assert "FAILED" not in row, row
    assert "CPU reference" in out  # the machine's speed at the start and the end
    assert out_json.exists()
    meta = json.loads(out_json.read_text())["meta"]
    assert len(meta["cpu_reference_ms"]) == 2 and all(v > 0 for v in meta["cpu_reference_ms"])
    for result in json.loads(out_json.read_text())["results"]:  # ... and before each shape
        now = result["extra"]["machine"]
        assert now["cpu_reference_ms"] > 0 and now["floor_ms"] is None, result  # no Postgres
    assert "measured again right before each shape" in out


def test_each_target_shows_the_machine_its_shape_ran_on() -> None:
    """A target's row carries the floor and the CPU reference taken right before its
    shape: a miss on a slow phase of the machine reads as such."""
    def result(shape: str, kind: str, steps: int, ms: float, floor: float) -> Result:
        return Result("perdure-postgres", shape, kind, steps, 3, [ms] * 3,
                      extra={"machine": {"floor_ms": floor, "cpu_reference_ms": 9.5}})
    report = Report([result("no-step", "none", 0, 0.5, 0.17),
                     result("seq-50", "seq", 50, 40.0, 0.61)], {})
    rows = {line.split("|")[1].strip(): line for line in report.targets_table().splitlines()}
    assert "0.61 / 9.5 ms" in rows["sequential step overhead <= 0.5 ms (seq-50, median/50)"]
    assert "0.17 / 9.5 ms" in rows["no-step workflow <= 1.5 ms"]
    assert "floor 0.17 to 0.61 ms" in report.header()


def test_unknown_shape_is_an_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "perdure.cli", "bench", "--quick", "--backend", "sqlite",
         "--shapes", "no-such-shape"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "no shape matches no-such-shape" in proc.stderr


def test_instructions_sum_the_backends_that_exited_since(tmp_path: Path) -> None:
    """``_instructions`` adds the totals callgrind wrote (``summary:`` in a final
    file, ``totals:`` in a dump) of the files written since the run began."""
    import os

    from perdure.bench._instructions import backend_instructions

    old = tmp_path / "cg.100"
    old.write_text("events: Ir\nsummary: 999\n")
    os.utime(old, (1_000.0, 1_000.0))
    (tmp_path / "cg.101").write_text("creator: callgrind\nevents: Ir\nsummary: 1500\nfl=x\n")
    (tmp_path / "cg.102").write_text("events: Ir\ntotals: 250\n")
    (tmp_path / "cg.103").write_text("")  # a process still running: nothing yet
    assert backend_instructions(str(tmp_path), since=2_000.0) == 1750
    assert backend_instructions(str(tmp_path), since=0.0) == 2749


def test_queue_latency_prints_a_row_per_round(tmp_path: Path) -> None:
    """``_queue_latency`` starts worker processes with each cooldown asked for and
    times every run it starts (SQLite here: a smoke test, timings unread)."""
    url = f"sqlite:///{tmp_path}/latency.db"
    proc = subprocess.run(
        [sys.executable, "-m", "perdure.bench._queue_latency", "--database-url", url,
         "--rate", "200", "--runs", "10", "--claim-cooldown", "0",
         "--claim-cooldown", "0.01"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| 1 | 200 |")]
    assert [row.split("|")[3].strip() for row in rows] == ["0", "0.01"], proc.stdout
    assert all(row.split("|")[4].strip() == "10" for row in rows), proc.stdout


def test_stream_timeline_prints_each_leg(tmp_path: Path) -> None:
    """``_stream_timeline`` times a live stream's chunks leg by leg (SQLite here: a
    smoke test, timings unread); the reader in the writer's process reads nothing
    back after its first query."""
    proc = subprocess.run(
        [sys.executable, "-m", "perdure.bench._stream_timeline", "--backend", "sqlite",
         "--chunks", "20"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line[:22].strip(): line[22:].strip() for line in proc.stdout.splitlines()[2:]}
    assert set(rows) == {"write to flush", "flush (commit)", "commit to delivery",
                         "write to delivery", "reads with chunks", "reads without"}
    assert int(rows["reads with chunks"]) + int(rows["reads without"]) <= 4, proc.stdout


def test_calls_times_the_hot_path(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "perdure.bench._calls", "seq-10", "--backend", "sqlite",
         "--iterations", "2", "--hot-path"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "11.0 World calls per iteration" in proc.stdout, proc.stdout
    for name in ("Worker._attempt", "WorkflowInstance.deliver", "Advancer._commit"):
        assert name in proc.stdout, proc.stdout


@pytest.mark.postgres
@pytest.mark.parametrize("whole", [False, True], ids=["batch", "batch-whole"])
def test_instructions_batch_starts_claims_and_steps_its_runs(pg_url: str, whole: bool) -> None:
    """``_instructions batch``: each iteration starts ten runs together, claims them
    together and gives each its first step together; ``batch-whole`` its whole
    life instead (the step and the run completed, the run's job acked)."""
    from perdure.bench._instructions import BATCH, _batches

    with PostgresWorld(pg_url, listen=False) as world:
        world.migrate()
    _batches(pg_url, 2, whole)
    with psycopg.connect(pg_url) as conn:
        runs = conn.execute("SELECT status, last_seq, count(*) FROM perdure.runs"
                            " GROUP BY status, last_seq").fetchall()
        steps = conn.execute("SELECT status, count(*) FROM perdure.steps"
                             " GROUP BY status").fetchall()
        jobs = conn.execute("SELECT kind, claimed_by, count(*) FROM perdure.jobs"
                            " GROUP BY kind, claimed_by").fetchall()
    if whole:
        assert (runs, steps, jobs) == ([("completed", 6, 2 * BATCH)],
                                       [("completed", 2 * BATCH)], [])
        return
    assert runs == [("running", 4, 2 * BATCH)]
    assert steps == [("running", 2 * BATCH)]
    assert jobs == [("step", "bench", 2 * BATCH)]
