from __future__ import annotations

from collections.abc import Callable

import pytest

from perdure import Engine


@pytest.fixture
def engine(backend_url: str, launched: Callable[..., Engine]) -> Engine:
    """A launched engine on a fresh database; every completed run must replay cleanly."""
    return launched(backend_url, concurrency=8)
