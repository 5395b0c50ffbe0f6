"""Waiting on a condition with a deadline: tests synchronize on state, never on sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(fn: Callable[[], T], *, timeout: float = 10.0, what: str = "condition",
             interval: float = 0.01) -> T:
    """Poll ``fn`` until it returns something truthy and return that; raise
    ``AssertionError`` naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
