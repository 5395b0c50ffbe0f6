"""Errors as recorded data, and back.

A failed step or run records ``{"type", "message", "traceback"}``. When a step's
retries run out, the workflow gets the error raised at its ``await``: the same
class when it is importable here (``FatalError``, ``ValueError``, an application
exception from an imported module), else :class:`StepFailedError`. Rebuilding
depends only on the record and the loaded code, so replay raises the same thing.
"""

from __future__ import annotations

import builtins
import sys
import traceback
from typing import Any

from .errors import PerdureError


class StepFailedError(PerdureError):
    """A step failed for good and its original exception class is not available."""

    def __init__(self, message: str, error_type: str = "", traceback_text: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.traceback_text = traceback_text


def describe(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    module = cls.__module__
    name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    return {
        "type": name,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc))[-20000:],
    }


def _find_class(type_name: str) -> type[BaseException] | None:
    if "." not in type_name:
        found = getattr(builtins, type_name, None)
    else:
        found = None
        parts = type_name.split(".")
        for i in range(len(parts) - 1, 0, -1):
            module = sys.modules.get(".".join(parts[:i]))
            if module is None:
                continue
            obj: Any = module
            for attr in parts[i:]:
                obj = getattr(obj, attr, None)
            found = obj
            break
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return None


def rebuild(error: dict[str, Any]) -> Exception:
    type_name = str(error.get("type", ""))
    message = str(error.get("message", ""))
    cls = _find_class(type_name)
    exc: BaseException | None = None
    if cls is not None:
        try:
            exc = cls(message)
        except Exception:  # noqa: BLE001 - constructors with other signatures
            try:
                made = cls.__new__(cls)
                made.args = (message,)
                exc = made
            except Exception:  # noqa: BLE001
                exc = None
    if not isinstance(exc, Exception):
        exc = StepFailedError(f"{type_name}: {message}", type_name, str(error.get("traceback", "")))
    exc.__notes__ = [f"perdure: recorded as {type_name}"]
    return exc
