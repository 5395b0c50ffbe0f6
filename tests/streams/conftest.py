"""Fixtures for the stream tests: a launched engine (the writer) per backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from perdure import Engine
from perdure.testing import assert_replays_cleanly

from . import stream_workflows  # noqa: F401 - registers the workflows
from ._support import reader_engine


def _launched(url: str) -> Iterator[Engine]:
    engine = Engine(url, lease_seconds=5, concurrency=10)
    engine.launch()
    yield engine
    try:
        for run in engine.list_runs(status="completed", limit=1000):
            assert_replays_cleanly(engine.world, run.id)
    finally:
        engine.shutdown(timeout=5)


@pytest.fixture
def engine(backend_url: str) -> Iterator[Engine]:
    """A launched engine on a fresh database of each backend."""
    yield from _launched(backend_url)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """A launched engine on a fresh Postgres database."""
    yield from _launched(pg_url)


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
