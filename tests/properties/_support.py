"""Shared by the bad-input properties: row counts per table, and the inputs."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from perdure import workflow

TABLES = ("runs", "events", "steps", "waits", "hooks", "jobs", "chunks")

# One database per test, shared by its examples: each example counts rows before
# and after itself.
SETTINGS = settings(max_examples=25, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@workflow(name="prop_echo")
async def prop_echo(*args: Any) -> list[Any]:
    return list(args)


def counts(url: str) -> dict[str, int]:
    """Rows in every perdure table (a dropped table would raise here)."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM perdure.{t}").fetchone()[0]  # type: ignore[index]
                for t in TABLES}


INJECTIONS = [
    "x'; DROP TABLE perdure.runs; --",
    "x'; DROP TABLE runs; --",
    "'; DELETE FROM perdure.events; --",
    "' OR '1'='1",
    "\" OR 1=1 --",
    "Robert'); DROP TABLE perdure.jobs;--",
    "$$; DROP SCHEMA perdure CASCADE; $$",
    "1; TRUNCATE perdure.runs",
    "%s", "%(name)s", "{0}", "?", ":name", "\\", "\\'", "--", "/*", "*/",
    "", " ", "NULL", "null", "None", "../../etc/passwd", "a" * 5000,
    "\u00f8\u00e9\U0001f600", "\u202e\u200b", "\n\r\t",
]

# Text a driver can carry: no NUL (Postgres text cannot hold it) and no lone
# surrogates (not encodable as UTF-8). Those two get their own tests.
clean_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                     max_size=200)
junk_names = st.sampled_from(INJECTIONS) | clean_text

json_scalars = (st.none() | st.booleans() | st.integers(-2**53, 2**53)
                | st.floats(allow_nan=False, allow_infinity=False) | clean_text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(clean_text, inner, max_size=4),
    max_leaves=12,
)


class Opaque:
    """An object perdure must refuse to store (no pickle)."""


def _gen() -> Any:
    yield 1


unserializable = st.sampled_from([
    Opaque(), object(), lambda: 1, _gen(), 1j, range(3), Ellipsis, NotImplemented, type,
    print, Exception("x"), iter([1]),
])


def with_a_bad_leaf(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value that is serializable except for one leaf somewhere inside it."""
    return st.recursive(
        unserializable,
        lambda inner: (st.tuples(inner, good).map(list)
                       | st.tuples(clean_text, inner, st.dictionaries(clean_text, good,
                                                                      max_size=2))
                       .map(lambda t: {**t[2], t[0]: t[1]})
                       | st.tuples(good, inner).map(tuple)),
        max_leaves=6,
    )
