"""Bad input to the SQL API (schema ``perdure``): a clear SQL error or the documented
answer (``false``, ``NULL``), and not one row written.

``perdure.start_workflow`` with arguments that are not a JSON array, unknown and
injection-like workflow names; ``perdure.resume_hook`` with unknown tokens and any
payload; ``perdure.run_status`` with junk ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from perdure import Engine

from ._support import INJECTIONS, SETTINGS, clean_text, counts, json_values, junk_names

pytestmark = pytest.mark.postgres


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    engine = Engine(pg_url)  # migrates and registers prop_echo
    with psycopg.connect(pg_url, autocommit=True) as c:
        yield c
    engine.shutdown()


def _sql_error(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql, params)
    return info.value


@SETTINGS
@given(args=json_values.filter(lambda v: not isinstance(v, list)))
def test_start_workflow_args_must_be_an_array(conn: psycopg.Connection[Any], pg_url: str,
                                              args: Any) -> None:
    before = counts(pg_url)
    error = _sql_error(conn, "SELECT perdure.start_workflow('prop_echo', %s)", (Jsonb(args),))
    assert error.sqlstate == "22023"
    assert "args must be a JSON array" in str(error)
    assert counts(pg_url) == before


@SETTINGS
@given(name=junk_names, args=st.lists(json_values, max_size=3), key=st.none() | clean_text)
def test_start_workflow_unknown_names(conn: psycopg.Connection[Any], pg_url: str, name: str,
                                      args: list[Any], key: str | None) -> None:
    assume(conn.execute("SELECT 1 FROM perdure.workflows WHERE name = %s", (name,))
           .fetchone() is None)
    before = counts(pg_url)
    error = _sql_error(conn, "SELECT perdure.start_workflow(%s, %s, %s)", (name, Jsonb(args), key))
    assert error.sqlstate == "PD005"
    assert "unknown workflow" in str(error)
    assert counts(pg_url) == before


@SETTINGS
@given(args=st.lists(json_values, max_size=4))
def test_start_workflow_in_a_rolled_back_transaction_leaves_nothing(
        conn: psycopg.Connection[Any], pg_url: str, args: list[Any]) -> None:
    before = counts(pg_url)
    with conn.transaction(force_rollback=True):
        row = conn.execute("SELECT perdure.start_workflow('prop_echo', %s)",
                           (Jsonb(args),)).fetchone()
        assert row is not None and conn.execute(
            "SELECT perdure.run_status(%s)", (row[0],)).fetchone() == ("pending",)
    assert counts(pg_url) == before


@SETTINGS
@given(token=junk_names, payload=json_values)
def test_resume_hook_unknown_tokens(conn: psycopg.Connection[Any], pg_url: str, token: str,
                                    payload: Any) -> None:
    before = counts(pg_url)
    row = conn.execute("SELECT perdure.resume_hook(%s, %s)", (token, Jsonb(payload))).fetchone()
    assert row == (False,)
    assert counts(pg_url) == before


@SETTINGS
@given(run_id=junk_names)
def test_run_status_of_junk_is_null(conn: psycopg.Connection[Any], pg_url: str,
                                    run_id: str) -> None:
    before = counts(pg_url)
    assert conn.execute("SELECT perdure.run_status(%s)", (run_id,)).fetchone() == (None,)
    assert counts(pg_url) == before


def test_nulls_and_wrong_types(conn: psycopg.Connection[Any], pg_url: str) -> None:
    before = counts(pg_url)
    for sql, state in (("SELECT perdure.start_workflow(NULL, '[]')", "PD005"),
                       ("SELECT perdure.start_workflow('prop_echo', NULL)", "22023"),
                       ("SELECT perdure.start_workflow('prop_echo', '\"[1]\"')", "22023"),
                       ("SELECT perdure.start_workflow('prop_echo', '{not json')", "22P02"),
                       ("SELECT perdure.start_workflow('prop_echo', 42)", "42883")):
        assert _sql_error(conn, sql, ()).sqlstate == state, sql
    assert conn.execute("SELECT perdure.resume_hook(NULL, '1')").fetchone() == (False,)
    assert conn.execute("SELECT perdure.resume_hook('t', NULL)").fetchone() == (False,)
    assert conn.execute("SELECT perdure.run_status(NULL)").fetchone() == (None,)
    assert counts(pg_url) == before


def test_injection_like_names_leave_the_schema_whole(conn: psycopg.Connection[Any],
                                                     pg_url: str) -> None:
    kept = conn.execute("SELECT perdure.start_workflow('prop_echo', '[1]')").fetchone()
    before = counts(pg_url)
    for text in INJECTIONS:
        assert _sql_error(conn, "SELECT perdure.start_workflow(%s, '[]')", (text,)).sqlstate \
            == "PD005"
        assert conn.execute("SELECT perdure.resume_hook(%s, %s)",
                            (text, Jsonb(text))).fetchone() == (False,)
        assert conn.execute("SELECT perdure.run_status(%s)", (text,)).fetchone() == (None,)
    assert counts(pg_url) == before
    assert kept is not None and conn.execute(
        "SELECT perdure.run_status(%s)", (kept[0],)).fetchone() == ("pending",)


def test_huge_idempotency_key_is_refused_clearly(conn: psycopg.Connection[Any],
                                                 pg_url: str) -> None:
    from .test_api_bad_input import HUGE_KEY

    before = counts(pg_url)
    error = _sql_error(conn, "SELECT perdure.start_workflow('prop_echo', '[]', %s)", (HUGE_KEY,))
    assert error.sqlstate in ("22023", "22001"), error
    assert counts(pg_url) == before
