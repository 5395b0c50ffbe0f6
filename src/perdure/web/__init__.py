"""``perdure web``: a JSON API (with an OpenAPI document), webhooks, and a web UI,
served by Starlette on uvicorn from an :class:`~perdure.Engine`.

Starlette loads only when the app is asked for, so the CLI's read commands (which
share ``_views`` with the API) start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import DEFAULT_MAX_BODY_BYTES, LOOPBACK_HOSTS, create_app

__all__ = ["DEFAULT_MAX_BODY_BYTES", "LOOPBACK_HOSTS", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import _app

        return getattr(_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
