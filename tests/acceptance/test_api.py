"""The HTTP API of ``perdure web`` (a subprocess), on both backends.

An in-process launched Engine executes the runs; its webhook URLs point at the
server, as they would with ``PERDURE_WEBHOOK_BASE_URL`` in production.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from perdure import Engine
from perdure.web._openapi import openapi_document

from . import web_workflows as ww
from .conftest import PERDURE, ROOT, WebServer, sse_events, start_web, wait_for


@pytest.fixture
def client(web_server: WebServer, web_engine: Engine) -> Iterator[httpx.Client]:
    with web_server.client() as c:
        yield c


def start(client: httpx.Client, workflow: str, *args: Any, **extra: Any) -> str:
    response = client.post("/api/runs", json={"workflow": workflow, "args": list(args), **extra})
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/api/runs/{response.json()['id']}"
    return str(response.json()["id"])


def until_status(client: httpx.Client, run_id: str, *statuses: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        return run if run["status"] in statuses else None

    return wait_for(reached, what=f"run {run_id} to be {statuses}")


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message: str = response.json()["error"]
    assert message
    return message


def test_start_show_and_list(client: httpx.Client) -> None:
    run_id = start(client, "web.quick", 21)
    run = until_status(client, run_id, "completed")
    assert run["workflow"] == "web.quick" and run["input"] == [21]
    assert run["output"] == {"doubled": 42} and run["error"] is None and run["terminal"]
    assert run["started_at"] and run["completed_at"] and run["duration_seconds"] >= 0
    [step] = run["steps"]
    assert step["name"] == "web.double" and step["output"] == 42
    assert [a["status"] for a in step["attempts"]] == ["completed"]

    others = [start(client, "web.quick", i) for i in range(3)]
    for other in others:
        until_status(client, other, "completed")
    mine = client.get("/api/runs", params={"workflow": "web.quick", "limit": 2}).json()
    assert [r["id"] for r in mine["runs"]] == others[::-1][:2]  # newest first
    rest = client.get("/api/runs", params={"workflow": "web.quick", "limit": 100,
                                           "cursor": mine["next_cursor"]}).json()
    assert [r["id"] for r in rest["runs"]][:2] == [others[0], run_id]
    completed = client.get("/api/runs", params={"status": "completed", "since": "1h"}).json()
    assert run_id in [r["id"] for r in completed["runs"]]
    assert client.get("/api/runs", params={"until": "2001-01-01T00:00:00Z"}).json()["runs"] == []

    same = start(client, "web.quick", 5, idempotency_key=f"k-{run_id}")
    assert start(client, "web.quick", 6, idempotency_key=f"k-{run_id}") == same


def test_bad_requests(client: httpx.Client) -> None:
    assert "no workflow" in error_of(client.post("/api/runs", json={"workflow": "nope"}), 404)
    assert "malformed JSON" in error_of(
        client.post("/api/runs", content=b'{"workflow": ', headers={
            "content-type": "application/json"}), 400)
    for body in ([], {"args": []}, {"workflow": "web.quick", "args": 3},
                 {"workflow": "web.quick", "extra": 1}, {"workflow": ""},
                 {"workflow": "web.quick", "idempotency_key": 7}):
        error_of(client.post("/api/runs", json=body), 400)
    error_of(client.post("/api/runs", content=b""), 400)
    error_of(client.post("/api/runs", content=b"\xff\xfe"), 400)
    missing = str(uuid.uuid4())
    for path in ("", "/events", "/steps", "/streams", "/streams/default"):
        assert error_of(client.get(f"/api/runs/{missing}{path}"), 404) == f"no run {missing}"
    error_of(client.post(f"/api/runs/{missing}/cancel"), 404)
    for params in ({"status": "sleeping"}, {"limit": 0}, {"limit": "x"}, {"since": "soon"},
                   {"workflow": "a\x00b"}):
        error_of(client.get("/api/runs", params=params), 400)
    error_of(client.get("/api/nothing-here"), 404)
    error_of(client.delete("/api/runs"), 405)


def test_steps_events_and_failures(client: httpx.Client) -> None:
    retried = start(client, "web.retrying", 2)
    failed = start(client, "web.failing", "kaboom")
    until_status(client, retried, "completed")
    [step] = client.get(f"/api/runs/{retried}/steps").json()["steps"]
    assert step["attempt"] == 3 and step["status"] == "completed"
    attempts = step["attempts"]
    assert [a["status"] for a in attempts] == ["retrying", "retrying", "completed"]
    assert attempts[0]["error"]["message"] == "attempt 1 fails"
    assert all(a["started_at"] <= a["ended_at"] for a in attempts)

    events = client.get(f"/api/runs/{retried}/events").json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("step_retrying") == 2
    later = client.get(f"/api/runs/{retried}/events", params={"after_seq": 3, "limit": 2})
    assert [e["seq"] for e in later.json()["events"]] == [4, 5]

    run = until_status(client, failed, "failed")
    assert run["error"]["type"] == "ValueError" and run["error"]["message"] == "kaboom"
    assert "Traceback" in run["error"]["traceback"] and run["output"] is None


def test_cancel(client: httpx.Client, web_engine: Engine) -> None:
    run_id = start(client, "web.sleeper", 3600)
    wait_for(lambda: client.get(f"/api/runs/{run_id}").json()["waits"], what="the sleep")
    answer = client.post(f"/api/runs/{run_id}/cancel")
    assert answer.status_code == 200
    assert answer.json() == {"id": run_id, "cancelled": True, "status": "cancelled"}
    again = client.post(f"/api/runs/{run_id}/cancel").json()
    assert again == {"id": run_id, "cancelled": False, "status": "cancelled"}
    assert [e["type"] for e in client.get(f"/api/runs/{run_id}/events").json()["events"]][-1] \
        == "run_cancelled"


def test_hook_resume(client: httpx.Client) -> None:
    token = f"approve:{uuid.uuid4()}"
    run_id = start(client, "web.approval", token)
    wait_for(lambda: client.get("/api/hooks", params={"run_id": run_id}).json()["hooks"],
             what="the hook")
    [hook] = client.get("/api/hooks", params={"run_id": run_id, "status": "active"}).json()["hooks"]
    assert hook["token"] == token and not hook["is_webhook"]
    assert "malformed JSON" in error_of(
        client.post(f"/api/hooks/{token}/resume", content=b"{oops"), 400)
    # a plain hook's token may be guessable: the unauthenticated webhook route ignores it
    error_of(client.post(f"/webhooks/{token}", json={"sneaky": True}), 404)
    answer = client.post(f"/api/hooks/{token}/resume", json={"ok": True})
    assert answer.status_code == 200 and answer.json() == {"token": token, "resumed": True}
    run = until_status(client, run_id, "completed")
    assert run["output"] == {"ok": True}
    assert run["hooks"][0]["received"] == 1
    error_of(client.post(f"/api/hooks/{token}/resume", json=1), 404)
    error_of(client.post("/api/hooks/never-made/resume", json=1), 404)


def _webhook_url(client: httpx.Client, run_id: str) -> str:
    with client.stream("GET", f"/api/runs/{run_id}/streams/url") as response:
        [event] = sse_events(response, count=1)
    url: str = event["json"]
    return url


def test_webhooks(client: httpx.Client, web_server: WebServer) -> None:
    run_id = start(client, "web.webhook")
    url = _webhook_url(client, run_id)
    [hook] = client.get(f"/api/runs/{run_id}").json()["hooks"]
    assert hook["is_webhook"] and len(hook["token"]) == 32  # 128 random bits, hex
    assert url == f"{web_server.base_url}/webhooks/{hook['token']}"

    assert httpx.get(url).status_code == 405
    assert httpx.put(url, json={}).status_code == 405
    answer = httpx.post(url, json={"event": "paid", "amount": 3})
    assert answer.status_code == 202
    assert until_status(client, run_id, "completed")["output"] == {"event": "paid", "amount": 3}
    assert httpx.post(url, json={"again": 1}).status_code == 404  # the run ended

    text_run = start(client, "web.webhook")
    text_url = _webhook_url(client, text_run)
    answer = httpx.post(text_url, content=b"a=1&b=2",
                        headers={"content-type": "application/x-www-form-urlencoded",
                                 "x-signature": "sig"})
    assert answer.status_code == 202
    payload = until_status(client, text_run, "completed")["output"]
    assert payload["body"] == "a=1&b=2"
    assert payload["content_type"] == "application/x-www-form-urlencoded"
    assert payload["headers"]["x-signature"] == "sig"

    binary_run = start(client, "web.webhook")
    answer = httpx.post(_webhook_url(client, binary_run), content=b"\x00\xff\xfe",
                        headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 202
    payload = until_status(client, binary_run, "completed")["output"]
    assert payload["body"] == {"base64": base64.b64encode(b"\x00\xff\xfe").decode()}
    assert httpx.post(f"{web_server.base_url}/webhooks/{'0' * 32}", json={}).status_code == 404


def test_sse_stream_resumes_after_last_event_id(client: httpx.Client) -> None:
    gate = f"sse-{uuid.uuid4()}"
    run_id = start(client, "web.ticker", 5, gate)
    path = f"/api/runs/{run_id}/streams/default"
    with client.stream("GET", path) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        first = sse_events(response, count=3)  # then disconnect
    assert [e["id"] for e in first] == ["0", "1", "2"]
    assert [e["json"] for e in first] == ["line 0", "line 1", "line 2"]

    ww.gate(gate).set()
    with client.stream("GET", path, headers={"Last-Event-ID": "2"}) as response:
        rest = sse_events(response)
    *chunks, end = rest
    assert [e["id"] for e in chunks] == [str(i) for i in range(3, 10)]
    assert [e["json"] for e in chunks] == [f"line {i}" for i in range(3, 10)]
    assert end["event"] == "end" and end["json"] == {"next_index": 10} and "id" not in end

    with client.stream("GET", path, params={"start_index": -2}) as response:
        tail = sse_events(response)
    assert [e.get("id") for e in tail] == ["8", "9", None]
    with client.stream("GET", path, params={"start_index": 0},
                       headers={"Last-Event-ID": "8"}) as response:  # the header wins
        assert [e.get("id") for e in sse_events(response)] == ["9", None]
    error_of(client.get(path, headers={"Last-Event-ID": "x"}), 400)
    assert client.get(f"/api/runs/{run_id}/streams").json() == {
        "streams": [{"name": "default", "chunks": 10, "closed": True}]}


def test_sse_chunk_types(client: httpx.Client) -> None:
    gate = f"types-{uuid.uuid4()}"
    ww.gate(gate).set()
    run_id = start(client, "web.streamer", [], gate)  # no chunks: still ends
    until_status(client, run_id, "completed")
    with client.stream("GET", f"/api/runs/{run_id}/streams/out") as response:
        [end] = sse_events(response)
    assert end["event"] == "end"
    with client.stream("GET", f"/api/runs/{run_id}/streams/never-opened") as response:
        [end] = sse_events(response)  # a run that ended without the stream: end at once
    assert end["event"] == "end"


def test_body_limit(client: httpx.Client) -> None:
    big = {"workflow": "web.quick", "args": ["x" * 5000]}
    assert "larger than 4096" in error_of(client.post("/api/runs", json=big), 413)

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
        yield b'{"workflow": "web.quick", "args": ["'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"]}'

    error_of(client.post("/api/runs", content=chunked()), 413)
    error_of(client.post("/api/hooks/t/resume", content=b"[" + b"1," * 3000 + b"1]"), 413)
    error_of(client.post("/webhooks/t", content=b"z" * 5000), 413)


def test_cross_origin_and_host_checks(client: httpx.Client) -> None:
    refused = client.post("/api/runs", json={"workflow": "web.quick", "args": [1]},
                          headers={"Origin": "https://evil.example"})
    assert error_of(refused, 403) == "cross-origin requests are refused"
    assert client.get("/api/runs", headers={"Origin": "https://evil.example"}).status_code == 200
    error_of(client.get("/api/runs", headers={"Host": "evil.example"}), 421)


def test_openapi_and_ui_are_served(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc == openapi_document()  # what the fuzz test checks the server against
    assert doc["openapi"].startswith("3.")
    assert {"/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/events",
            "/api/runs/{run_id}/steps", "/api/runs/{run_id}/cancel",
            "/api/runs/{run_id}/streams", "/api/runs/{run_id}/streams/{name}",
            "/api/hooks/{token}/resume", "/webhooks/{token}"} <= set(doc["paths"])
    page = client.get("/")
    assert page.status_code == 200 and "<title>perdure</title>" in page.text
    assert "content-security-policy" in page.headers
    assert client.get("/static/app.js").status_code == 200


# -- authentication (one server with a token, SQLite) ------------------------------------
@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('auth')}/perdure.db"
    server = start_web(url, token="s3cret-token")
    yield server
    server.stop()


def test_bearer_token_required(token_server: WebServer) -> None:
    base = token_server.base_url
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
        response = httpx.get(f"{base}/api/runs", headers=headers)
        assert error_of(response, 401) == "missing or wrong bearer token"
        assert response.headers["www-authenticate"].startswith("Bearer")
    error_of(httpx.post(f"{base}/api/runs", json={"workflow": "x"}), 401)
    error_of(httpx.post(f"{base}/api/hooks/t/resume", json=1), 401)
    good = {"Authorization": "Bearer s3cret-token"}
    assert httpx.get(f"{base}/api/runs", headers=good).json() == {"runs": [],
                                                                   "next_cursor": None}
    missing = str(uuid.uuid4())
    # EventSource cannot send headers: the stream route also takes ?access_token=
    stream = f"{base}/api/runs/{missing}/streams/default"
    assert httpx.get(stream, params={"access_token": "s3cret-token"}).status_code == 404
    assert httpx.get(stream, params={"access_token": "wrong"}).status_code == 401
    assert httpx.get(f"{base}/api/runs", params={"access_token": "s3cret-token"}).status_code \
        == 401  # only the stream route
    # the document, the UI and webhooks need no API token
    assert httpx.get(f"{base}/openapi.json").status_code == 200
    assert httpx.get(f"{base}/").status_code == 200
    assert httpx.post(f"{base}/webhooks/{'0' * 32}", json={}).status_code == 404
    # with a token the host check is off (it may sit behind a proxy)
    assert httpx.get(f"{base}/api/runs", headers={**good, "Host": "perdure.example"}) \
        .status_code == 200


def test_refuses_public_address_without_token(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PERDURE_API_TOKEN"}
    result = subprocess.run([*PERDURE, "--database-url", f"sqlite:///{tmp_path}/p.db", "web",
                             "--host", "0.0.0.0", "--port", "0"], capture_output=True,
                            text=True, timeout=60, env=env, cwd=ROOT)
    assert result.returncode != 0
    assert result.stderr.strip().startswith("error: refusing to serve on 0.0.0.0 without "
                                            "authentication")


def test_server_says_it_is_unauthenticated(web_server: WebServer) -> None:
    line = next(x for x in web_server.output if x.startswith("perdure web on "))
    assert "UNAUTHENTICATED, loopback only" in line
