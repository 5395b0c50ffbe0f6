"""Values to JSON and back, without pickle.

Plain JSON values pass through. Other supported types become tagged objects
``{"__t": <tag>, "v": <value>}``: bytes, datetime, date, time, timedelta, Decimal,
UUID, tuple, set, frozenset, non-finite floats, dicts with non-string keys, and
dataclasses. A user dict that happens to hold the key ``"__t"`` is itself wrapped
(tag ``dict``), so decoding is never ambiguous. Anything else raises
``SerializationError`` naming where in the value it sits, before anything is written.

Dataclasses decode only to classes whose module is already imported: a payload can
never make perdure import code. Without the class (a CLI reading someone else's
runs) ``decode(..., strict=False)`` gives the fields as a dict.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import math
import os
import sys
import uuid
from decimal import Decimal
from typing import Any, cast

from .errors import PayloadTooLargeError, SerializationError
from .world import dumps, loads

TAG = "__t"
DEFAULT_MAX_PAYLOAD_BYTES = int(os.environ.get("PERDURE_MAX_PAYLOAD_BYTES", 64 * 1024 * 1024))

_SCALARS = (str, int, bool, type(None))


class _Budget:
    """Counts (roughly) the bytes a value will take, to refuse oversized payloads early."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise PayloadTooLargeError(
                f"payload is larger than the limit of {self.limit} bytes "
                "(set PERDURE_MAX_PAYLOAD_BYTES or Engine(max_payload_bytes=...))"
            )


def encode(value: Any, *, max_bytes: int | None = None) -> Any:
    """``value`` as JSON-compatible data (tagged where needed)."""
    budget = _Budget(DEFAULT_MAX_PAYLOAD_BYTES if max_bytes is None else max_bytes)
    return _enc(value, budget, "value")


def _enc(v: Any, budget: _Budget, path: str) -> Any:  # noqa: C901 - one branch per type
    t = type(v)
    if t is str:
        budget.spend(len(v) + 2)
        return v
    if t is int or t is bool or v is None:
        budget.spend(8)
        return v
    if t is float:
        budget.spend(8)
        return v if math.isfinite(v) else {TAG: "float", "v": repr(v)}
    if t is list:
        budget.spend(2)
        return [_enc(x, budget, f"{path}[{i}]") for i, x in enumerate(v)]
    if t is dict:
        budget.spend(2)
        if all(type(k) is str for k in v):
            out = {k: _enc(x, budget, f"{path}[{k!r}]") for k, x in v.items()}
            return {TAG: "dict", "v": out} if TAG in v else out
        pairs = [[_enc(k, budget, f"{path}.key"), _enc(x, budget, f"{path}[{k!r}]")]
                 for k, x in v.items()]
        return {TAG: "map", "v": pairs}
    if t is bytes or t is bytearray or t is memoryview:
        raw = bytes(v)
        budget.spend(len(raw) * 4 // 3 + 4)
        return {TAG: "bytes", "v": base64.b64encode(raw).decode("ascii")}
    if t is tuple:
        return {TAG: "tuple", "v": [_enc(x, budget, f"{path}[{i}]") for i, x in enumerate(v)]}
    if t is set or t is frozenset:
        items = [_enc(x, budget, f"{path}{{}}") for x in v]
        items.sort(key=dumps)  # sets have no order; sorting makes encoding deterministic
        return {TAG: "set" if t is set else "frozenset", "v": items}
    if t is dt.datetime:
        return {TAG: "datetime", "v": v.isoformat()}
    if t is dt.date:
        return {TAG: "date", "v": v.isoformat()}
    if t is dt.time:
        return {TAG: "time", "v": v.isoformat()}
    if t is dt.timedelta:
        return {TAG: "timedelta", "v": [v.days, v.seconds, v.microseconds]}
    if t is Decimal:
        return {TAG: "decimal", "v": str(v)}
    if t is uuid.UUID:
        return {TAG: "uuid", "v": str(v)}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        fields = {f.name: _enc(getattr(v, f.name), budget, f"{path}.{f.name}")
                  for f in dataclasses.fields(v)}
        return {TAG: "dataclass", "cls": f"{t.__module__}:{t.__qualname__}", "v": fields}
    raise SerializationError(
        f"cannot serialize {path} of type {t.__module__}.{t.__qualname__}: perdure stores "
        "JSON values, bytes, datetime, date, Decimal, UUID, tuple, set and dataclasses"
    )


def decode(data: Any, *, strict: bool = True) -> Any:
    """Inverse of :func:`encode`."""
    t = type(data)
    if t is list:
        return [decode(x, strict=strict) for x in data]
    if t is not dict:
        return data
    tag = data.get(TAG)
    if tag is None:
        return {k: decode(x, strict=strict) for k, x in data.items()}
    try:
        return _decode_tagged(tag, data, strict)
    except SerializationError:
        raise
    except Exception as exc:  # a malformed tagged value (e.g. written from SQL)
        raise SerializationError(f"malformed tagged value {tag!r}: {exc}") from exc


def _decode_tagged(tag: str, data: dict[str, Any], strict: bool) -> Any:  # noqa: C901
    v: Any = data.get("v")
    if tag == "bytes":
        return base64.b64decode(v)
    if tag == "dict":
        return {k: decode(x, strict=strict) for k, x in v.items()}
    if tag == "map":
        return {decode(k, strict=strict): decode(x, strict=strict) for k, x in v}
    if tag == "tuple":
        return tuple(decode(x, strict=strict) for x in v)
    if tag == "set":
        return {decode(x, strict=strict) for x in v}
    if tag == "frozenset":
        return frozenset(decode(x, strict=strict) for x in v)
    if tag == "float":
        return float(v)
    if tag == "datetime":
        return dt.datetime.fromisoformat(v)
    if tag == "date":
        return dt.date.fromisoformat(v)
    if tag == "time":
        return dt.time.fromisoformat(v)
    if tag == "timedelta":
        return dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2])
    if tag == "decimal":
        return Decimal(v)
    if tag == "uuid":
        return uuid.UUID(v)
    if tag == "dataclass":
        return _decode_dataclass(data, strict)
    raise SerializationError(f"unknown serialization tag {tag!r}")


def _decode_dataclass(data: dict[str, Any], strict: bool) -> Any:
    fields = {k: decode(x, strict=strict) for k, x in data["v"].items()}
    module_name, _, qualname = str(data.get("cls", "")).partition(":")
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split(".") if obj is not None else ():
        obj = getattr(obj, part, None)
    if obj is None or not dataclasses.is_dataclass(obj):
        if strict:
            raise SerializationError(
                f"dataclass {data.get('cls')} is not importable here; import its module first"
            )
        return fields
    init = {f.name for f in dataclasses.fields(obj) if f.init}
    instance = cast(Any, obj)(**{k: x for k, x in fields.items() if k in init})
    for k, x in fields.items():
        if k not in init:
            object.__setattr__(instance, k, x)
    return instance


def dumps_value(value: Any, *, max_bytes: int | None = None) -> str:
    """``value`` encoded and written as JSON text."""
    return dumps(encode(value, max_bytes=max_bytes))


def loads_value(text: str | bytes, *, strict: bool = True) -> Any:
    return decode(loads(text), strict=strict)


def check_serializable(value: Any, *, max_bytes: int | None = None) -> None:
    """Raise ``SerializationError`` now rather than at commit time."""
    encode(value, max_bytes=max_bytes)
