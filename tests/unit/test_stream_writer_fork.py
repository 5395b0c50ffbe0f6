"""The stream writer's flush threads in a forked child: the child inherits the
parent's executor object but none of its threads, so it must make its own."""

from __future__ import annotations

import os
import sys

import pytest

from perdure import _stream_writer


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX")
def test_a_forked_child_flushes_on_its_own_threads() -> None:
    for _ in range(3):  # threads in the parent, idle when the child is forked
        assert _stream_writer._flusher().submit(lambda: 1).result(timeout=5) == 1
    pid = os.fork()
    if pid == 0:  # the child: a flush must run, not wait on a thread that is not there
        code = 1
        try:
            code = 0 if _stream_writer._flusher().submit(lambda: 2).result(timeout=5) == 2 else 1
        except BaseException:  # noqa: BLE001 - the exit code says it
            code = 2
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
