"""Postgres arrays for the hot path: literals built by hand, event data in binary.

psycopg adapts a Python list element by element in Python (about 5 us per array
on the hot path, a dozen arrays per append); a literal ``{"a","b",NULL}`` is one
string, cheap to build, sent as text and parsed by the server's ``array_in``
(the query casts it: ``%s::text[]``). Text elements are quoted, so only ``"`` and
``\\`` need escaping; ``None`` becomes an unquoted NULL. Floats print with
``repr``, which the server reads back to the same double.

Long texts (event data: a step's arguments and result) go the other way: a plain
list sent with psycopg's binary placeholder ``%b``. ``array_in`` reads a literal
character by character, about 0.06 ms of server CPU for two 10 KB payloads, where
the binary form is lengths and bytes (and the Python side skips the escaping).
"""

from __future__ import annotations

from collections.abc import Iterable


def _quote(value: str) -> str:
    if '"' in value or "\\" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def text_array(values: Iterable[str | None] | None) -> str | None:
    """``text[]`` literal (None: SQL NULL)."""
    if values is None:
        return None
    return "{" + ",".join(["NULL" if v is None else _quote(v) for v in values]) + "}"


def number_array(values: Iterable[float | int | None] | None) -> str | None:
    """``float8[]`` or ``bigint[]`` literal (``repr`` is exact for floats)."""
    if values is None:
        return None
    return "{" + ",".join(["NULL" if v is None else repr(v) for v in values]) + "}"


def bool_array(values: Iterable[bool | None] | None) -> str | None:
    if values is None:
        return None
    return "{" + ",".join(["NULL" if v is None else ("t" if v else "f") for v in values]) + "}"
