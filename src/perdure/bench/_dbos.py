"""The DBOS side, seen from ``perdure bench``: a benchmark-only virtualenv with
``dbos`` in it (never a dependency of perdure), a fresh ``dbos_bench`` database on
the same Postgres server, and ``_dbos_program.py`` run there in a subprocess that
measures one shape per request and answers with its results as JSON, which this
process merges.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._catalog import Shape
from ._measure import Result, fresh_database

PROGRAM = Path(__file__).with_name("_dbos_program.py")
REQUIREMENTS = ("dbos", "py-spy")
DATABASE = "dbos_bench"


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ensure_venv(venv: Path, progress: Callable[[str], None]) -> Path:
    """The benchmark virtualenv's Python, made and filled on first use."""
    python = venv_python(venv)
    if not python.exists():
        progress(f"creating the benchmark virtualenv {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import dbos, psycopg"], capture_output=True)
    if probe.returncode != 0:
        progress(f"installing {' '.join(REQUIREMENTS)} into {venv}")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
                       check=True)
    return python


class DbosSide:
    """The DBOS benchmark process, kept for the whole run and asked one shape at a
    time (a JSON line each way), so DBOS and perdure run side by side, shape by shape."""

    system = "dbos"

    def __init__(self, server_url: str, plan: dict[str, Any], venv: Path,
                 progress: Callable[[str], None]) -> None:
        python = ensure_venv(venv, progress)
        self.url = fresh_database(server_url, DATABASE)
        self.plan = plan
        self.proc = subprocess.Popen([str(python), str(PROGRAM)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.meta = self._ask({"url": self.url})

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise RuntimeError(f"the DBOS benchmark process exited with {code}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def measure(self, shape: Shape) -> Result:
        try:
            data = self._ask({"shape": shape.to_json(), "plan": self.plan})
        except (RuntimeError, OSError, ValueError) as exc:
            return Result(self.system, shape.name, shape.kind, shape.steps,
                          error=f"{type(exc).__name__}: {exc}")
        return Result.from_json(data)

    def close(self) -> dict[str, Any]:
        with contextlib.suppress(RuntimeError, OSError, ValueError):
            self._ask({"quit": True})
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return {"dbos_version": self.meta.get("dbos_version"), "dbos_database": DATABASE}
