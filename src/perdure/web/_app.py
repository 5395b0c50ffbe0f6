"""The ASGI app of ``perdure web``: API, webhooks, OpenAPI document and UI.

Security, outermost first:

1. ``Host`` check (without a token only): the app answers only to loopback host
   names, so a web page that rebinds its DNS name to 127.0.0.1 cannot read the API.
2. ``Origin`` check: a state-changing ``/api`` request sent by a browser from
   another origin is refused (403), so no other site can start or cancel runs.
3. Bearer token (``PERDURE_API_TOKEN``): every ``/api`` route needs
   ``Authorization: Bearer <token>``; the stream route also takes
   ``?access_token=`` because a browser ``EventSource`` cannot send headers.
   ``/webhooks/{token}`` needs no API token: its 128-bit token is the secret.
4. Bodies are bounded (413, decided from ``Content-Length`` before reading); bad
   input is a 4xx with a one-line JSON error, never a 500.
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._engine import Engine
from ._api import ROUTES
from ._http import JSONResponse, api_error_for, error_response
from ._openapi import openapi_document

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
STATIC = Path(__file__).parent / "static"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_STREAM_PATH = re.compile(r"^/api/runs/[^/]+/streams/.+")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"),
]

Endpoint = Callable[[Request], Awaitable[Response]]


def create_app(engine: Engine, *, api_token: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Starlette:
    """The Starlette app serving ``engine``. ``api_token``: require it as a bearer
    token on ``/api``; None: open, for loopback only (the host check enforces it)."""
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be positive")
    routes: list[BaseRoute] = [
        Route(r.path, _guarded(r.endpoint), methods=sorted(r.methods or ()))
        for r in ROUTES if isinstance(r, Route)
    ]
    routes += [
        Route("/openapi.json", _openapi, methods=["GET"]),
        Route("/", _index, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_exception})
    app.state.engine = engine
    app.state.max_body_bytes = max_body_bytes
    app.state.api_token = api_token
    app.add_middleware(Guard, api_token=api_token)
    return app


def _guarded(endpoint: Endpoint) -> Endpoint:
    """Every handler's errors as JSON answers: perdure's errors by meaning, bad input
    400; anything else is a bug, logged, and a 500 that says so."""

    @functools.wraps(endpoint)
    async def handler(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:  # noqa: BLE001 - mapped below
            error = api_error_for(exc)
            if error is None:
                logger.exception("%s %s failed", request.method, request.url.path)
                return error_response(500, f"internal error: {type(exc).__name__}")
            return error_response(error.status, error.message, error.headers)

    return handler


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, dict(exc.headers or {}))


async def _openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


class Guard:
    """Host, Origin and bearer-token checks, plus security headers, as plain ASGI
    (so streaming responses pass through untouched)."""

    def __init__(self, app: ASGIApp, api_token: str | None) -> None:
        self.app = app
        self.api_token = api_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = _headers(scope)
        host = headers.get("host", "")
        if self.api_token is None and _host_name(host) not in LOOPBACK_HOSTS:
            return error_response(421, "this server has no API token and answers only on "
                                       "loopback host names")
        path: str = scope["path"]
        method: str = scope["method"]
        is_api = path == "/api" or path.startswith("/api/")
        origin = headers.get("origin")
        if is_api and method not in _SAFE_METHODS and origin and origin != "null" \
                and urlsplit(origin).netloc.lower() != host.lower():
            return error_response(403, "cross-origin requests are refused")
        if is_api and self.api_token is not None and not self._authorized(scope, headers):
            return error_response(401, "missing or wrong bearer token",
                                  {"WWW-Authenticate": 'Bearer realm="perdure"'})
        return None

    def _authorized(self, scope: Scope, headers: dict[str, str]) -> bool:
        assert self.api_token is not None
        given = None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        elif scope["method"] == "GET" and _STREAM_PATH.match(scope["path"]):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (query.get("access_token") or [None])[0]
        return given is not None and hmac.compare_digest(given.encode(), self.api_token.encode())


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        found.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _host_name(host: str) -> str:
    """``host`` of a Host header, without port or IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
