"""Durations as users write them: seconds, ``timedelta``, or ``"5s"``/``"10m"``/``"1d"``."""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def to_seconds(duration: float | int | dt.timedelta | str) -> float:
    """Seconds in ``duration``; ``"1h30m"`` works too. Negative or unparsable raises ValueError."""
    if isinstance(duration, bool):
        raise TypeError("a duration is a number of seconds, a timedelta or a string like '5s'")
    if isinstance(duration, int | float):
        seconds = float(duration)
    elif isinstance(duration, dt.timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, str):
        text = duration.strip().lower().replace(" ", "")
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(
                f"cannot read duration {duration!r}: use e.g. '500ms', '5s', '10m', '1d'"
            )
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise TypeError(f"cannot read a duration from {type(duration).__name__}")
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"a duration cannot be negative: {duration!r}")
    return seconds
