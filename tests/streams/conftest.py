"""Fixtures for the stream tests: a launched engine (the writer) per backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from perdure import Engine

from . import stream_workflows  # noqa: F401 - registers the workflows
from ._support import reader_engine


@pytest.fixture
def engine(backend_url: str, launched: Callable[..., Engine]) -> Engine:
    """A launched engine on a fresh database of each backend."""
    return launched(backend_url, concurrency=10)


@pytest.fixture
def pg_engine(pg_url: str, launched: Callable[..., Engine]) -> Engine:
    """A launched engine on a fresh Postgres database."""
    return launched(pg_url, concurrency=10)


@pytest.fixture
def make_reader() -> Iterator[Callable[..., Engine]]:
    """``make_reader(url, poll_interval=..., listen=...)``: a reading engine with its
    own World (see ``reader_engine``), shut down after the test."""
    made: list[Engine] = []

    def make(url: str, **options: Any) -> Engine:
        reader = reader_engine(url, **options)
        made.append(reader)
        return reader

    yield make
    for reader in made:
        reader.shutdown(timeout=5)
