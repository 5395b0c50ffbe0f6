"""Round trips of the tagged JSON serializer, and its refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perdure._serialization import decode, dumps_value, encode, loads_value
from perdure.errors import PayloadTooLargeError, SerializationError


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: str


# A datetime keeps its wall time and UTC offset, not its zone's name (see
# test_zoned_datetime_keeps_wall_time_and_offset): compared across zones, a time in
# a DST gap or fold is never equal to anything (PEP 495), so the round trip of
# arbitrary values uses fixed offsets.
fixed_offsets = st.builds(
    dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59),
                               max_value=dt.timedelta(hours=23, minutes=59)))
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text() | st.binary() | st.decimals(allow_nan=False, allow_infinity=False)
    | st.uuids() | st.dates() | st.datetimes(timezones=st.none() | fixed_offsets)
    | st.builds(Point, st.integers(), st.text())
)
hashables = st.integers() | st.text() | st.tuples(st.integers(), st.text())
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(), inner, max_size=5)
        | st.tuples(inner, inner)
        | st.sets(hashables, max_size=5)
        | st.dictionaries(st.integers(), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trip(value: object) -> None:
    assert loads_value(dumps_value(value)) == value


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=st.timezones()))
def test_zoned_datetime_keeps_wall_time_and_offset(value: dt.datetime) -> None:
    back = loads_value(dumps_value(value))
    assert back.isoformat() == value.isoformat()
    assert back.utcoffset() == value.utcoffset()


@given(st.text())
def test_strings_with_nul_and_non_bmp_round_trip(text: str) -> None:
    for s in (text, text + "\x00", "\U0001f600" + text, "\ud800"):
        assert loads_value(dumps_value(s)) == s


def test_tag_key_in_user_dict_is_not_misread() -> None:
    value = {"__t": "bytes", "v": "not base64!"}
    assert decode(encode(value)) == value


def test_non_finite_floats_and_exact_types() -> None:
    out = loads_value(dumps_value([float("inf"), (1, [2]), frozenset({1}), dt.timedelta(days=1)]))
    assert out[0] == float("inf") and out[1] == (1, [2]) and out[2] == frozenset({1})
    assert type(out[1]) is tuple and out[3] == dt.timedelta(days=1)


@pytest.mark.parametrize("bad", [object(), lambda: 1, {1, object()}, [1, {"a": object()}],
                                 Exception("x"), iter([1])])
def test_unserializable_values_raise_serialization_error(bad: object) -> None:
    with pytest.raises(SerializationError, match="cannot serialize"):
        encode(bad)


def test_size_limit() -> None:
    encode(b"x" * 1000, max_bytes=2000)
    with pytest.raises(PayloadTooLargeError):
        encode(b"x" * 10_000, max_bytes=2000)
    with pytest.raises(PayloadTooLargeError):
        encode(["y" * 600] * 5, max_bytes=2000)


def test_unknown_dataclass_decodes_to_fields_when_not_strict() -> None:
    data = {"__t": "dataclass", "cls": "nowhere.module:Thing", "v": {"a": 1}}
    with pytest.raises(SerializationError):
        decode(data)
    assert decode(data, strict=False) == {"a": 1}


def test_exact_values() -> None:
    value = {"d": Decimal("0.1"), "u": uuid.UUID(int=5), "b": b"\x00"}
    assert loads_value(dumps_value(value)) == value
