"""Load SQL from ``.sql`` files kept beside each backend.

A queries file holds named sections::

    -- name: claim_jobs
    SELECT ...;

Migrations are files ``migrations/NNNN_description.sql`` applied in order.
"""

from __future__ import annotations

import re
from importlib import resources

_SECTION = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, str]:
    text = resources.files(package).joinpath("sql", filename).read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        queries[name] = body.strip().rstrip(";").strip()
    return queries


def load_migrations(package: str) -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` sorted by version."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)
