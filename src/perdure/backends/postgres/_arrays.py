"""Postgres array literals, built by hand for the hot path.

psycopg adapts a Python list element by element in Python (about 5 us per array
on the hot path, a dozen arrays per append); a literal ``{"a","b",NULL}`` is one
string, cheap to build, sent as text and parsed by the server's ``array_in``
(the query casts it: ``%s::text[]``). Elements are quoted, so only ``"`` and
``\\`` need escaping; ``None`` becomes an unquoted NULL. Floats print with
``repr``, which the server reads back to the same double.
"""

from __future__ import annotations

from collections.abc import Iterable


def _element(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        if '"' in value or "\\" in value:
            value = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{value}"'
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"no array literal for {type(value).__name__}")


def array(values: Iterable[object] | None) -> str | None:
    """The array literal of ``values`` (text, int, float, bool or None), or None."""
    if values is None:
        return None
    return "{" + ",".join(map(_element, values)) + "}"
