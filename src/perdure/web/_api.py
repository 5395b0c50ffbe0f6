"""The JSON API under ``/api`` and the webhook endpoint, one handler per route.

Handlers only translate: HTTP in, an Engine or World call (in a worker thread, as
both block), HTTP out. Errors become answers in ``_app`` (perdure's errors map to
404/400/409), so a handler simply raises.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .._engine import Engine
from ..errors import HookNotFoundError
from . import _views as views
from ._http import ApiError, JSONResponse, parse_json, query_int, read_body
from ._sse import resolve_start, stream_events

Endpoint = Callable[[Request], Awaitable[Response]]


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _limit(request: Request) -> int:
    limit: int = request.app.state.max_body_bytes
    return limit


def _time_param(request: Request, name: str) -> float | None:
    raw = _text_param(request, name)
    if raw is None:
        return None
    try:
        return views.parse_time(raw)
    except ValueError as exc:
        raise ApiError(400, f"{name}: {exc}") from None


def _text_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw == "":
        raise ApiError(400, f"{name} cannot be empty (leave it out instead)")
    return views.check_text(raw, name)


# -- runs ----------------------------------------------------------------------------
async def start_run(request: Request) -> Response:
    body = parse_json(await read_body(request, _limit(request)))
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be a JSON object: {"workflow": name, "args": [...]}')
    unknown = set(body) - {"workflow", "args", "idempotency_key"}
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    workflow = body.get("workflow")
    args = body.get("args", [])
    key = body.get("idempotency_key")
    if not isinstance(workflow, str) or not workflow:
        raise ApiError(400, '"workflow" must be a non-empty string')
    if not isinstance(args, list):
        raise ApiError(400, '"args" must be a JSON array of positional arguments')
    if key is not None and (not isinstance(key, str) or not key):
        raise ApiError(400, '"idempotency_key" must be a non-empty string or null')
    views.check_text(workflow, "a workflow name")
    if key is not None:
        views.check_text(key, "an idempotency key")
    engine = _engine(request)
    run = await run_in_threadpool(engine.start, workflow, *args, idempotency_key=key)
    record = await run_in_threadpool(views.get_run_record, engine.world, run.id)
    return JSONResponse(views.run_summary(record), status_code=201,
                        headers={"Location": f"/api/runs/{run.id}"})


async def list_runs(request: Request) -> Response:
    status = _text_param(request, "status")
    workflow = _text_param(request, "workflow")
    cursor = _text_param(request, "cursor")
    since = _time_param(request, "since")
    until = _time_param(request, "until")
    limit = query_int(request, "limit", 50, low=1, high=views.MAX_LIMIT)
    assert limit is not None
    page = await run_in_threadpool(
        views.list_runs, _engine(request).world, status=status, workflow=workflow,
        since=since, until=until, limit=limit, cursor=cursor)
    return JSONResponse(page)


async def get_run(request: Request) -> Response:
    detail = await run_in_threadpool(views.run_detail, _engine(request).world,
                                     request.path_params["run_id"])
    return JSONResponse(detail)


async def run_events(request: Request) -> Response:
    after = query_int(request, "after_seq", 0, low=0, high=views.MAX_INDEX)
    limit = query_int(request, "limit", None, low=1, high=10 * views.MAX_LIMIT)
    assert after is not None
    events = await run_in_threadpool(views.list_events, _engine(request).world,
                                     request.path_params["run_id"], after_seq=after, limit=limit)
    return JSONResponse(events)


async def run_steps(request: Request) -> Response:
    steps = await run_in_threadpool(views.list_steps, _engine(request).world,
                                    request.path_params["run_id"])
    return JSONResponse(steps)


async def cancel_run(request: Request) -> Response:
    engine = _engine(request)
    run_id = request.path_params["run_id"]

    def cancel() -> dict[str, Any]:
        views.get_run_record(engine.world, run_id)
        cancelled = engine.get_run(run_id).cancel()
        record = views.get_run_record(engine.world, run_id)
        return {"id": run_id, "cancelled": cancelled, "status": record.status}

    return JSONResponse(await run_in_threadpool(cancel))


async def list_streams(request: Request) -> Response:
    world = _engine(request).world
    run_id = request.path_params["run_id"]

    def streams() -> dict[str, Any]:
        views.get_run_record(world, run_id)
        return {"streams": [views.stream_view(s) for s in world.list_streams(run_id)]}

    return JSONResponse(await run_in_threadpool(streams))


async def stream_chunks(request: Request) -> Response:
    engine = _engine(request)
    run_id = request.path_params["run_id"]
    name = views.check_text(request.path_params["name"], "a stream name")
    start = query_int(request, "start_index", 0, low=-views.MAX_INDEX, high=views.MAX_INDEX)
    assert start is not None
    last_id = request.headers.get("last-event-id")
    if last_id is not None and last_id.strip():
        try:
            start = int(last_id) + 1
        except ValueError:
            raise ApiError(400, f"Last-Event-ID must be a chunk index, not {last_id!r}") from None
        if start < 0:
            raise ApiError(400, "Last-Event-ID must be a chunk index (0 or more)")
    await run_in_threadpool(views.get_run_record, engine.world, run_id)
    start = await resolve_start(engine.world, run_id, name, start)
    if request.method == "HEAD":  # headers only: never hold a live stream open for HEAD
        return Response(media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    return StreamingResponse(
        stream_events(engine.world, run_id, name, start, engine.poll_interval),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- hooks and workflows ---------------------------------------------------------------
async def resume_hook(request: Request) -> Response:
    token = views.check_text(request.path_params["token"], "a hook token")
    payload = parse_json(await read_body(request, _limit(request)), empty=None)
    engine = _engine(request)
    await run_in_threadpool(engine.resume_hook, token, payload)
    return JSONResponse({"token": token, "resumed": True})


async def list_hooks(request: Request) -> Response:
    status = _text_param(request, "status")
    if status is not None and status not in ("active", "disposed"):
        raise ApiError(400, "status must be active or disposed")
    run_id = _text_param(request, "run_id")
    cursor = _text_param(request, "cursor")
    if cursor is not None:
        views.check_hook_cursor(cursor)
    limit = query_int(request, "limit", 100, low=1, high=views.MAX_LIMIT)
    assert limit is not None
    world = _engine(request).world

    def hooks() -> dict[str, Any]:
        page = world.list_hooks(run_id=run_id, status=status, limit=limit, cursor=cursor)
        return {"hooks": [views.hook_view(h) for h in page.items],
                "next_cursor": page.next_cursor}

    return JSONResponse(await run_in_threadpool(hooks))


async def list_workflows(request: Request) -> Response:
    from .._decorators import workflow_names

    world = _engine(request).world
    names = await run_in_threadpool(world.registered_workflows)
    return JSONResponse({"workflows": sorted(set(names) | set(workflow_names()))})


# -- webhooks ------------------------------------------------------------------------
async def webhook(request: Request) -> Response:
    """Resume the webhook hook holding ``token`` with the request: its JSON body, or
    for any other body ``{"body", "headers", "content_type"}``. Only hooks made by
    ``create_webhook()`` (random 128-bit tokens) answer here: a plain hook's token
    may be guessable, so it is resumed only through the authenticated API."""
    token = views.check_text(request.path_params["token"], "a webhook token")
    raw = await read_body(request, _limit(request))
    content_type = request.headers.get("content-type", "")
    payload: Any
    try:
        payload = parse_json(raw) if "json" in content_type.lower() or _looks_json(raw) else ...
    except ApiError:
        payload = ...
    if payload is ...:
        try:
            body: str | dict[str, str] = raw.decode("utf-8")
        except UnicodeDecodeError:
            body = {"base64": base64.b64encode(raw).decode()}
        payload = {"body": body, "content_type": content_type or None,
                   "headers": {k: v for k, v in request.headers.items()
                               if k not in ("authorization", "cookie")}}
    engine = _engine(request)

    def deliver() -> None:
        hook = engine.world.get_hook_by_token(token)
        if hook is None or not hook.is_webhook:
            raise HookNotFoundError("no live webhook with this token")
        engine.resume_hook(token, payload)

    await run_in_threadpool(deliver)
    return JSONResponse({"accepted": True}, status_code=202)


def _looks_json(raw: bytes) -> bool:
    return raw.lstrip()[:1] in (b"{", b"[")


async def runs(request: Request) -> Response:
    if request.method == "POST":
        _only(request, ())
        return await start_run(request)
    _only(request, ("status", "workflow", "since", "until", "limit", "cursor"))
    return await list_runs(request)


def _only(request: Request, names: tuple[str, ...]) -> None:
    unknown = sorted(set(request.query_params) - set(names))
    if unknown:
        raise ApiError(400, f"unknown query parameter(s): {', '.join(map(repr, unknown))}")


def _route(path: str, endpoint: Endpoint, method: str, params: tuple[str, ...] = (),
           *, strict: bool = True) -> Route:
    """A route whose handler refuses query parameters it does not know (a typo in a
    filter should not silently list everything)."""
    if not strict:
        return Route(path, endpoint, methods=[method])

    @functools.wraps(endpoint)
    async def checked(request: Request) -> Response:
        _only(request, params)
        return await endpoint(request)

    return Route(path, checked, methods=[method])


ROUTES = [
    Route("/api/runs", runs, methods=["GET", "POST"]),
    _route("/api/runs/{run_id}", get_run, "GET"),
    _route("/api/runs/{run_id}/events", run_events, "GET", ("after_seq", "limit")),
    _route("/api/runs/{run_id}/steps", run_steps, "GET"),
    _route("/api/runs/{run_id}/cancel", cancel_run, "POST"),
    _route("/api/runs/{run_id}/streams", list_streams, "GET"),
    _route("/api/runs/{run_id}/streams/{name:path}", stream_chunks, "GET",
           ("start_index", "access_token")),
    _route("/api/hooks", list_hooks, "GET", ("status", "run_id", "limit", "cursor")),
    _route("/api/hooks/{token:path}/resume", resume_hook, "POST"),
    _route("/api/workflows", list_workflows, "GET"),
    _route("/webhooks/{token:path}", webhook, "POST", strict=False),  # senders add what they like
]
