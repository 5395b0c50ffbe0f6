"""Bad input to the command line: one clear ``error:`` line, exit status 1, and
not one row written. ``perdure hooks resume TOKEN JSON`` with text that is not
JSON (as an argument and on stdin), unknown tokens, and junk run ids for
``perdure runs show|cancel``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import assume, given
from hypothesis import strategies as st

from perdure import Engine

from ._support import SETTINGS, clean_text, counts, json_values, junk_names

pytest.importorskip("perdure.cli._hooks", reason="perdure hooks resume is not built yet")

from perdure.cli import cli  # noqa: E402 - after the skip


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


malformed = (
    st.sampled_from(["{not json", "{'single': 'quotes'}", "[1, 2", "tru", "NaN-ish",
                     "{\"a\": }", "\"unterminated", "1 2", "{}{}", "", "   ", "\x00",
                     "{\"a\": 1,}", "[1,]", "undefined", "0x10", "--", "{\"a\" 1}"])
    | clean_text
).filter(_not_json)


@pytest.fixture
def engine(backend_url: str) -> Iterator[Engine]:
    eng = Engine(backend_url)
    yield eng
    eng.shutdown()


def _invoke(url: str, *args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["--database-url", url, *args], input=stdin)


def _error_line(result: Any) -> str:
    text = (result.stderr if result.stderr_bytes is not None else result.output).strip()
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@SETTINGS
@given(token=junk_names, payload=malformed)
def test_hooks_resume_with_malformed_json(engine: Engine, backend_url: str, token: str,
                                          payload: str) -> None:
    assume(not token.startswith("-"))
    before = counts(backend_url)
    result = _invoke(backend_url, "hooks", "resume", "--", token, payload)
    assert result.exit_code == 1, result.output
    assert _error_line(result).startswith("error: bad JSON payload")
    piped = _invoke(backend_url, "hooks", "resume", "--", token, "-", stdin=payload)
    assert piped.exit_code == 1 and "bad JSON payload" in _error_line(piped)
    assert counts(backend_url) == before


@SETTINGS
@given(token=junk_names, payload=json_values)
def test_hooks_resume_with_unknown_tokens(engine: Engine, backend_url: str, token: str,
                                          payload: Any) -> None:
    before = counts(backend_url)
    result = _invoke(backend_url, "hooks", "resume", "--", token, json.dumps(payload))
    assert result.exit_code == 1, result.output
    assert _error_line(result).startswith("error: no live hook")
    assert counts(backend_url) == before


@SETTINGS
@given(run_id=junk_names, command=st.sampled_from(["show", "cancel", "events"]))
def test_runs_commands_with_junk_ids(engine: Engine, backend_url: str, run_id: str,
                                     command: str) -> None:
    before = counts(backend_url)
    result = _invoke(backend_url, "runs", command, "--", run_id)
    assert result.exit_code == 1, result.output
    assert _error_line(result) == f"error: no run {run_id!r}"
    assert counts(backend_url) == before


def test_the_real_command_with_bad_json(engine: Engine, backend_url: str) -> None:
    """The same through a real process: exit 1, one line on stderr, nothing on stdout."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    before = counts(backend_url)
    env = {k: v for k, v in os.environ.items() if k != "PERDURE_DATABASE_URL"}
    out = subprocess.run([sys.executable, "-m", "perdure.cli", "--database-url", backend_url,
                          "hooks", "resume", "x'; DROP TABLE perdure.runs; --", "{oops"],
                         capture_output=True, text=True, timeout=60, cwd=root, env=env)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().startswith("error: bad JSON payload"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert counts(backend_url) == before
