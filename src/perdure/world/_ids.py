"""Time-ordered ids: UUIDv7 strings, so sorting by id sorts by creation time.

The Postgres SQL start API builds the same format in SQL (``perdure.uuid7()``).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Random bytes drawn from os.urandom ahead, 10 per id: one system call per 256 ids
# instead of two per id. Each call released and took back the GIL, and a client
# starting runs from 16 threads spent about a fifth of its CPU per start there
# (docs/performance.md). A forked child starts afresh (``_forget``): it must not
# hand out its parent's next bytes.
_POOL_IDS = 256
_pool = b""
_pos = 0


def _forget() -> None:
    global _pool, _pos
    _pool, _pos = b"", 0


os.register_at_fork(after_in_child=_forget)


def uuid7() -> str:
    """A UUIDv7 whose 12-bit ``rand_a`` is a per-millisecond counter, so ids made
    by one process are strictly increasing."""
    global _last_ms, _counter, _pool, _pos
    with _lock:
        if _pos == len(_pool):
            _pool, _pos = os.urandom(10 * _POOL_IDS), 0
        rand = _pool[_pos:_pos + 10]
        _pos += 10
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter spent: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = int.from_bytes(rand[8:], "big") & 0x3FF
        rand_a = _counter
    rand_b = int.from_bytes(rand[:8], "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def new_token() -> str:
    """128 random bits, URL-safe: hook tokens and webhook paths."""
    return os.urandom(16).hex()
