"""Request plumbing every route shares: bounded bodies, JSON in and out, errors."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON

from ..errors import (
    HookNotFoundError,
    PerdureError,
    RunNotFoundError,
    SerializationError,
    WorkflowNotFoundError,
)


class JSONResponse(_StarletteJSON):
    """JSON with non-ASCII escaped: always valid UTF-8, even for a stored string that
    holds a lone surrogate, and byte-for-byte what was stored."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False,
                          separators=(",", ":")).encode("ascii")


class ApiError(Exception):
    """An error answer: HTTP status and a one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(status: int, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def api_error_for(exc: Exception) -> ApiError | None:
    """perdure's errors (and bad values) as the HTTP errors they mean, else None."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RunNotFoundError | HookNotFoundError | WorkflowNotFoundError):
        return ApiError(404, str(exc))
    if isinstance(exc, SerializationError | ValueError):
        return ApiError(400, str(exc))
    if isinstance(exc, RecursionError):
        return ApiError(400, "the value is nested too deeply")
    if isinstance(exc, PerdureError):
        return ApiError(409, str(exc))
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit``:
    from ``Content-Length`` before reading anything, else while it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "bad Content-Length header") from None
        if size > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
    return bytes(body)


def parse_json(body: bytes, *, empty: Any = ...) -> Any:
    """JSON from a request body; a clear 400 when it is not JSON."""
    if not body.strip():
        if empty is not ...:
            return empty
        raise ApiError(400, "the request body must be JSON, and it is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the request body must be JSON in UTF-8") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise ApiError(400, f"malformed JSON in the request body: {exc}") from None
    except RecursionError:
        raise ApiError(400, "the JSON in the request body is nested too deeply") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def query_int(request: Request, name: str, default: int | None, *, low: int,
              high: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, not {raw!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ApiError(400, f"{name} must be {bounds}")
    return value
