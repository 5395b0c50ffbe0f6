from __future__ import annotations

from collections.abc import Iterator

import pytest

from perdure import Engine
from perdure.testing import assert_replays_cleanly


@pytest.fixture
def engine(backend_url: str) -> Iterator[Engine]:
    """A launched engine on a fresh database; every completed run must replay cleanly."""
    eng = Engine(backend_url, lease_seconds=5, concurrency=8)
    eng.launch()
    yield eng
    try:
        for run in eng.list_runs(status="completed", limit=1000):
            assert_replays_cleanly(eng.world, run.id)
    finally:
        eng.shutdown(timeout=5)
