"""The event log's JSON text (``world._records._encode``) is the standard library's,
character for character: stored events must read back the same whatever wrote them."""

from __future__ import annotations

import json
import math
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perdure.world._records import _LONG, _encode, _standard, data_text

# Long strings are where _encode takes its own path: ASCII ones with and without
# something to escape, and any text at all.
_ascii = st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=_LONG + 1)
_printable = st.text(alphabet=string.ascii_letters + string.digits + "+/=-_ .:",
                     min_size=_LONG + 1)
_strings = st.one_of(st.text(), _ascii, _printable, st.text(min_size=_LONG + 1))
_scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                     st.floats(allow_nan=False, allow_infinity=False), _strings)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(_strings, inner, max_size=5)), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(_values)
def test_the_text_is_the_standard_librarys(value: object) -> None:
    assert _encode(value) == _standard(value)


@pytest.mark.parametrize("special", [*map(chr, range(0x20)), '"', "\\"])
def test_a_long_string_with_one_character_to_escape_is_escaped(special: str) -> None:
    value = "a" * 100 + special + "b" * 100
    assert _encode({"output": value}) == _standard({"output": value})
    assert json.loads(_encode(value)) == value


def test_a_long_plain_string_is_quoted_as_it_is() -> None:
    value = string.ascii_letters * 200
    assert _encode([value]) == f'["{value}"]'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [math.nan]])
def test_out_of_range_floats_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        _encode(value)


def test_a_value_json_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        _encode({"x": {1}})


def test_a_circular_value_is_refused() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular reference"):
        _encode(loop)


def test_no_data_is_sql_null() -> None:
    assert data_text(None) is None
    assert data_text({}) == "{}"
