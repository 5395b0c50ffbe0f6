"""Hand-built array literals read back by the server exactly as written."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from perdure.backends.postgres._arrays import bool_array, number_array, text_array
from perdure.world import dumps

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(("values", "make", "cast"), [
    (["a", "", "NULL", None, 'x"y', "b\\c", "{}", " sp ", "é☃", ",", "a\nb\t"], text_array,
     "text[]"),
    ([dumps({"k": 'v"\\\u0000', "n": [1.5, None]}), dumps("\ud800")], text_array, "text[]"),
    ([0.1, 1795277859.9942327, None, 1e-300, -2.5, 3.0, 2.0**62], number_array, "float8[]"),
    ([math.inf, -math.inf], number_array, "float8[]"),
    ([1, 2**40, None, -7], number_array, "bigint[]"),
    ([True, False, None], bool_array, "boolean[]"),
    ([], text_array, "text[]"),
])
def test_round_trip(
    admin: psycopg.Connection[Any], values: list[Any], make: Callable[[Any], str], cast: str
) -> None:
    row = admin.execute(f"SELECT %s::{cast}", (make(values),)).fetchone()
    assert row is not None and row[0] == values


def test_none_is_null(admin: psycopg.Connection[Any]) -> None:
    assert text_array(None) is None and number_array(None) is None and bool_array(None) is None


@pytest.mark.parametrize("values", [
    ["a", "", "NULL", None, 'x"y', "b\\c", "{}", " sp ", "é☃", ",", "a\nb\t"],
    [dumps({"k": 'v"\\\u0000', "n": [1.5, None]}), dumps("\ud800"), "x" * 100_000],
    [],
    [None],
])
def test_binary_text_array_round_trip(pg_url: str, values: list[str | None]) -> None:
    """Event data is sent this way (``%b``: psycopg's binary list dumper)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT %b::text[]", (values,)).fetchone()
    assert row is not None and row[0] == values


def test_binary_text_array_uses_the_connection_encoding(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET client_encoding = 'LATIN1'")
        row = conn.execute("SELECT %b::text[], octet_length(convert_to(%s, 'UTF8'))",
                           (["café"], "é")).fetchone()
    assert row == (["café"], 2)
