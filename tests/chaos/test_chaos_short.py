"""The short chaos run (``perdure chaos --short``) passes: about two minutes of
killed workers, dropped connections and a restarted PostgreSQL under load, and not
one run, result, chunk or side effect lost, duplicated or corrupted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perdure.testing._postgres import _pg_bin

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(1200)]


def test_chaos_short(tmp_path: Path) -> None:
    if not (_pg_bin("initdb") and _pg_bin("pg_ctl")):
        message = "perdure chaos needs initdb and pg_ctl for its own cluster"
        if os.environ.get("PERDURE_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    summary_path = tmp_path / "summary.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", "from perdure.cli import main; main()", "chaos", "--short",
         "--summary-json", str(summary_path)],
        capture_output=True, text=True, timeout=1100, env=env)
    report = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-5000:]}"
    print(report)
    assert summary_path.exists(), report
    summary = json.loads(summary_path.read_text())
    assert summary["lost"] == 0, report
    assert summary["duplicated"] == 0, report
    assert summary["corrupted"] == 0, report
    assert summary["runs"] >= 200 and summary["runs_completed"] == summary["runs"], report
    assert summary["replayed"] == summary["runs"], report
    assert summary["kills"] >= 20, report
    assert summary["connection_drops"] >= 50, report
    assert summary["restarts"] == 1, report
    assert summary["findings"] == [] and summary["unmet"] == [], report
    assert summary["passed"] and proc.returncode == 0, report
