"""The ``perdure`` CLI through its real entry point, on both backends.

Runs are started and executed by an in-process launched Engine on the same
database; the CLI subprocess only reads and steers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from perdure import Engine
from perdure.errors import HookNotFoundError

from . import web_workflows as ww
from .conftest import run_cli, wait_for


@pytest.fixture
def engine(backend_url: str) -> Iterator[Engine]:
    eng = Engine(backend_url, lease_seconds=5, concurrency=8)
    eng.launch()
    yield eng
    for gate in list(ww.GATES.values()):
        gate.set()
    eng.shutdown(timeout=5)


def ok(url: str, *args: str, stdin: str | None = None) -> str:
    result = run_cli(url, *args, stdin=stdin)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


def fails(url: str, *args: str, stdin: str | None = None) -> str:
    """Runs a command that must fail; returns its one-line error."""
    result = run_cli(url, *args, stdin=stdin)
    assert result.returncode != 0, f"{args} should fail: {result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_runs_list_show_events(engine: Engine, backend_url: str) -> None:
    done = engine.start(ww.quick, 21)
    assert done.result(timeout=30) == {"doubled": 42}
    retried = engine.start(ww.retrying, 2)
    assert retried.result(timeout=30) == "ok on attempt 3"
    failed = engine.start(ww.failing, "kaboom")
    wait_for(lambda: failed.status() == "failed", what="the run to fail")

    table = ok(backend_url, "runs", "list")
    header, *rows = table.strip().splitlines()
    assert header.split() == ["ID", "WORKFLOW", "STATUS", "CREATED", "(UTC)", "DURATION"]
    assert [r.split()[0] for r in rows] == [failed.id, retried.id, done.id]  # newest first
    assert rows[2].split()[1:3] == ["web.quick", "completed"]

    listed = json.loads(ok(backend_url, "runs", "list", "--json"))
    assert [r["id"] for r in listed["runs"]] == [failed.id, retried.id, done.id]
    only_failed = json.loads(ok(backend_url, "runs", "list", "--status", "failed", "--json"))
    assert [r["id"] for r in only_failed["runs"]] == [failed.id]
    by_workflow = json.loads(ok(backend_url, "runs", "list", "--workflow", "web.quick", "--json"))
    assert [r["id"] for r in by_workflow["runs"]] == [done.id]
    recent = json.loads(ok(backend_url, "runs", "list", "--since", "1h", "--json"))
    assert len(recent["runs"]) == 3
    future = json.loads(ok(backend_url, "runs", "list", "--until", "2000-01-01", "--json"))
    assert future["runs"] == []

    page = json.loads(ok(backend_url, "runs", "list", "--limit", "2", "--json"))
    assert [r["id"] for r in page["runs"]] == [failed.id, retried.id]
    rest = json.loads(ok(backend_url, "runs", "list", "--limit", "2", "--cursor",
                         page["next_cursor"], "--json"))
    assert [r["id"] for r in rest["runs"]] == [done.id] and rest["next_cursor"] is None

    shown = ok(backend_url, "runs", "show", retried.id)
    assert "status     completed" in shown
    assert "web.flaky" in shown and "attempt 1" in shown and "RetryableError" in shown
    detail = json.loads(ok(backend_url, "runs", "show", retried.id, "--json"))
    assert detail["output"] == "ok on attempt 3" and detail["input"] == [2]
    [step] = detail["steps"]
    assert [a["status"] for a in step["attempts"]] == ["retrying", "retrying", "completed"]

    failure = ok(backend_url, "runs", "show", failed.id)
    assert "error      ValueError: kaboom" in failure
    assert "Traceback (most recent call last)" in failure  # the recorded traceback

    events = json.loads(ok(backend_url, "runs", "events", done.id, "--json"))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run_created" and events[-1]["type"] == "run_completed"
    text = ok(backend_url, "runs", "events", done.id)
    assert text.splitlines()[0].split()[:3] == ["SEQ", "TIME", "(UTC)"]
    assert "run_completed" in text


def test_runs_cancel(engine: Engine, backend_url: str) -> None:
    run = engine.start(ww.sleeper, 3600)
    wait_for(lambda: engine.world.list_waits(run.id).items, what="the run to sleep")
    assert ok(backend_url, "runs", "cancel", run.id).strip() == f"cancelled run {run.id}"
    assert run.status() == "cancelled"
    again = ok(backend_url, "runs", "cancel", run.id)
    assert "had already ended: cancelled" in again


def test_hooks_resume_and_list(engine: Engine, backend_url: str) -> None:
    token = f"approve-{uuid.uuid4()}"
    run = engine.start(ww.approval, token)
    wait_for(lambda: engine.world.get_hook_by_token(token), what="the hook")
    listed = json.loads(ok(backend_url, "hooks", "list", "--json"))
    assert [h["token"] for h in listed["hooks"]] == [token]
    assert token in ok(backend_url, "hooks", "list")

    assert fails(backend_url, "hooks", "resume", token, "{not json").startswith(
        "error: bad JSON payload")
    assert ok(backend_url, "hooks", "resume", token, '{"ok": true, "by": "cli"}').strip() \
        == f"resumed hook {token}"
    assert run.result(timeout=30) == {"ok": True, "by": "cli"}
    assert "no live hook" in fails(backend_url, "hooks", "resume", token, "1")
    with pytest.raises(HookNotFoundError):
        engine.resume_hook(token, 2)

    token2 = f"stdin-{uuid.uuid4()}"
    run2 = engine.start(ww.approval, token2)
    wait_for(lambda: engine.world.get_hook_by_token(token2), what="the hook")
    ok(backend_url, "hooks", "resume", token2, "-", stdin='[1, "two"]')
    assert run2.result(timeout=30) == [1, "two"]


def test_streams_tail(engine: Engine, backend_url: str) -> None:
    gate = f"tail-{uuid.uuid4()}"
    chunks = ["hello", b"bytes \xe2\x9c\x93", b"\x00\xff", {"n": 1}]
    run = engine.start(ww.streamer, chunks, gate)
    wait_for(lambda: engine.world.stream_info(run.id, "out").chunks == 4, what="4 chunks")

    stored = ok(backend_url, "streams", "tail", run.id, "--name", "out")
    assert stored.splitlines() == ["hello", "bytes \u2713", repr(b"\x00\xff"), '{"n": 1}']
    last = ok(backend_url, "streams", "tail", run.id, "--name", "out", "--start-index", "-1")
    assert last.splitlines() == ['{"n": 1}']
    lines = ok(backend_url, "streams", "tail", run.id, "--name", "out", "--json").splitlines()
    assert [json.loads(x)["index"] for x in lines] == [0, 1, 2, 3]
    assert json.loads(lines[2]) == {"index": 2, "type": "bytes", "base64": "AP8="}

    ww.gate(gate).set()
    followed = ok(backend_url, "streams", "tail", run.id, "--name", "out", "--start-index", "2",
                  "--follow")  # returns once the stream closes
    assert len(followed.splitlines()) == 6
    assert run.result(timeout=30) == 8
    assert ok(backend_url, "streams", "tail", run.id).strip() == ""  # no default stream


def test_errors_are_one_line(engine: Engine, backend_url: str) -> None:
    missing = str(uuid.uuid4())
    for command in (["runs", "show", missing], ["runs", "events", missing],
                    ["runs", "cancel", missing], ["streams", "tail", missing]):
        assert fails(backend_url, *command) == f"error: no run {missing!r}"
    assert "no live hook" in fails(backend_url, "hooks", "resume", "nope", "{}")
    assert "--since" in fails(backend_url, "runs", "list", "--since", "yesterday-ish")


@pytest.mark.parametrize("command", [["runs", "list"], ["runs", "show", "x"],
                                     ["hooks", "resume", "t", "{}"]])
def test_unreachable_database(command: list[str]) -> None:
    result = run_cli("postgresql://127.0.0.1:1/x", *command, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open the database"), \
        result.stderr
