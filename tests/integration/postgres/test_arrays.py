"""Hand-built array literals read back by the server exactly as written."""

from __future__ import annotations

import math
from typing import Any

import psycopg
import pytest

from perdure.backends.postgres._arrays import array
from perdure.world import dumps

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(("values", "cast"), [
    (["a", "", "NULL", None, 'x"y', "b\\c", "{}", " sp ", "é☃", ",", "a\nb\t"], "text[]"),
    ([dumps({"k": 'v"\\\u0000', "n": [1.5, None]}), dumps("\ud800")], "text[]"),
    ([0.1, 1795277859.9942327, None, 1e-300, -2.5, 3.0, 2.0**62], "float8[]"),
    ([1, 2**40, None, -7], "bigint[]"),
    ([True, False, None], "boolean[]"),
    ([], "text[]"),
])
def test_round_trip(admin: psycopg.Connection[Any], values: list[Any], cast: str) -> None:
    row = admin.execute(f"SELECT %s::{cast}", (array(values),)).fetchone()
    assert row is not None and row[0] == values


def test_special_floats(admin: psycopg.Connection[Any]) -> None:
    row = admin.execute("SELECT %s::float8[]", (array([math.inf, -math.inf]),)).fetchone()
    assert row is not None and row[0] == [math.inf, -math.inf]


def test_none_is_null(admin: psycopg.Connection[Any]) -> None:
    assert admin.execute("SELECT %s::text[] IS NULL", (array(None),)).fetchone() == (True,)
