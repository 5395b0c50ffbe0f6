"""The worker processes of a chaos run: real ``perdure worker`` subprocesses.

Each runs :mod:`perdure.chaos.workload` (loaded by path, as a user's app would be)
and logs to its own file in the run's folder. The fleet can SIGKILL one at random
and start a replacement, and tells which workers died without being killed (a
crash is a finding in itself).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import workload


@dataclass
class WorkerProcess:
    number: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    started_at: float = field(default_factory=time.monotonic)
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid


class Fleet:
    def __init__(self, url: str, folder: Path, *, size: int, lease: float, concurrency: int,
                 poll_interval: float) -> None:
        self.url = url
        self.folder = folder
        self.size = size
        self.lease = lease
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.workers: list[WorkerProcess] = []   # every worker ever started
        self.kills = 0
        self._lock = threading.Lock()
        self._numbers = iter(range(1, 1_000_000))

    # -- starting and stopping ------------------------------------------------------
    def command(self) -> list[str]:
        return [sys.executable, "-c", "from perdure.cli import main; main()", "-v",
                "--database-url", self.url, "worker", workload.__file__,
                "--lease", str(self.lease), "--concurrency", str(self.concurrency),
                "--poll-interval", str(self.poll_interval), "--drain-timeout", "20"]

    def spawn(self) -> WorkerProcess:
        number = next(self._numbers)
        log_path = self.folder / f"worker-{number:03d}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed when the worker is reaped
        env = {**os.environ, "PYTHONUNBUFFERED": "1", workload.URL_ENV: self.url}
        env.pop("PERDURE_DATABASE_URL", None)
        proc = subprocess.Popen(self.command(), env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
        worker = WorkerProcess(number, proc, log_path, log)
        with self._lock:
            self.workers.append(worker)
        return worker

    def start(self) -> None:
        for _ in range(self.size):
            self.spawn()

    def live(self) -> list[WorkerProcess]:
        with self._lock:
            return [w for w in self.workers if w.proc.poll() is None]

    def crashed(self) -> list[WorkerProcess]:
        """Workers that exited on their own (not SIGKILLed by us, not stopped)."""
        with self._lock:
            return [w for w in self.workers
                    if not w.killed and w.proc.poll() not in (None, 0)]

    def kill_random(self, rng: random.Random) -> WorkerProcess | None:
        """SIGKILL one live worker (chosen by ``rng``) and start a replacement."""
        live = self.live()
        if not live:
            self.spawn()
            return None
        victim = rng.choice(live)
        victim.killed = True
        with contextlib.suppress(ProcessLookupError):
            victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        victim.log.close()
        self.kills += 1
        self.spawn()
        return victim

    def top_up(self) -> None:
        """Start workers until ``size`` are alive (after a crash)."""
        while len(self.live()) < self.size:
            self.spawn()

    def stop(self, timeout: float = 40.0) -> list[WorkerProcess]:
        """SIGTERM every live worker (they drain and close their connections);
        SIGKILL the ones still alive after ``timeout``. Returns the stragglers."""
        live = self.live()
        for worker in live:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        stragglers = []
        for worker in live:
            try:
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stragglers.append(worker)
                worker.killed = True
                worker.proc.kill()
                worker.proc.wait(timeout=10)
        for worker in self.workers:
            if not worker.log.closed:
                worker.log.close()
        return stragglers

    def pids(self) -> set[int]:
        with self._lock:
            return {w.pid for w in self.workers}
