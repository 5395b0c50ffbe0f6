"""Output for people: aligned tables, short times and values."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import click


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, indent: str = "") -> None:
    """An aligned table; the last column is not padded (it may be long)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True))
        line = f"{line}  {row[-1]}" if len(row) > 1 else row[-1]
        click.echo(indent + (click.style(line.rstrip(), bold=True) if n == 0 else line.rstrip()))


def short_time(iso: str | None) -> str:
    """``2025-01-31 12:00:00.123`` (UTC) from an ISO string; ``-`` for none."""
    if not iso:
        return "-"
    when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    a = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    return (b - a).total_seconds()


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def compact(value: Any, width: int | None = None) -> str:
    """A value as one line of JSON, cut to ``width`` characters."""
    text = dumps(value, separators=(", ", ": "))
    if width is not None and len(text) > width:
        text = text[: width - 3] + "..."
    return text


def dumps(value: Any, **kwargs: Any) -> str:
    """JSON with real characters, or escapes when some cannot be printed (lone surrogates)."""
    text = json.dumps(value, ensure_ascii=False, default=str, **kwargs)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, ensure_ascii=True, default=str, **kwargs)
    return text


def echo_json(value: Any) -> None:
    click.echo(dumps(value, indent=2))


def echo_json_line(value: Any) -> None:
    click.echo(dumps(value))
