"""The fault injector: killed workers, dropped connections, a restarted server.

Two threads, so a slow restart never delays the kills:

- the killer: every ``kill_interval`` seconds, SIGKILL a random worker and start a
  new one;
- the database faults: every ``drop_interval`` seconds, ``pg_terminate_backend``
  every LISTEN connection (``application_name = 'perdure-listener'``) and a few
  pooled ones (``'perdure'``) of the chaos database, the load driver's included;
  once, at ``restart_at`` seconds, ``pg_ctl restart -m fast``.

Every fault is counted; the choices come from one seeded ``random.Random`` per
thread, so a seed names the schedule (not the timing, which is the machine's).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..backends.postgres._listener import APPLICATION_NAME as LISTENER_NAME
from ._fleet import Fleet

logger = logging.getLogger(__name__)

POOL_NAME = "perdure"          # perdure.backends.postgres._db.Database's application_name
ADMIN_NAME = "perdure-chaos-admin"


@dataclass
class FaultStats:
    kills: int = 0
    listener_drops: int = 0
    pool_drops: int = 0
    restarts: int = 0
    restart_seconds: float = 0.0
    drop_rounds: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def drops(self) -> int:
        return self.listener_drops + self.pool_drops


class FaultInjector:
    def __init__(self, url: str, fleet: Fleet, restart: Callable[[], None], *, seed: int,
                 kill_interval: float = 2.0, drop_interval: float = 1.0,
                 pooled_per_round: int = 2, restart_at: float | None = None) -> None:
        self.url = url
        self.fleet = fleet
        self._restart = restart
        self.kill_interval = kill_interval
        self.drop_interval = drop_interval
        self.pooled_per_round = pooled_per_round
        self.restart_at = restart_at
        self.stats = FaultStats()
        self._kill_rng = random.Random(seed)
        self._drop_rng = random.Random(seed + 1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._admin: psycopg.Connection[Any] | None = None
        self._started = 0.0
        self.restarting = threading.Event()
        self._restart_tried = False

    def start(self) -> None:
        self._started = time.monotonic()
        for target, name in ((self._kill_loop, "chaos-killer"), (self._db_loop, "chaos-db")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()

    # -- worker kills --------------------------------------------------------------
    def _kill_loop(self) -> None:
        while not self._stop.wait(self.kill_interval):
            try:
                victim = self.fleet.kill_random(self._kill_rng)
                if victim is not None:
                    self.stats.kills += 1
                    logger.info("killed worker %d (pid %d)", victim.number, victim.pid)
                self.fleet.top_up()
            except Exception as exc:  # noqa: BLE001 - keep injecting
                self.stats.errors.append(f"kill: {exc!r}")
                logger.warning("killing a worker failed", exc_info=True)

    # -- connection drops and the restart -------------------------------------------
    def _db_loop(self) -> None:
        next_drop = time.monotonic() + self.drop_interval
        while not self._stop.is_set():
            now = time.monotonic()
            if (self.restart_at is not None and not self._restart_tried
                    and now - self._started >= self.restart_at):
                self._restart_server()
                continue
            if now >= next_drop:
                next_drop = now + self.drop_interval
                try:
                    self._drop_round()
                except psycopg.Error as exc:
                    self._close_admin()
                    logger.info("a drop round failed: %s", exc)
            self._stop.wait(min(0.1, max(0.0, next_drop - time.monotonic())))

    def _admin_conn(self) -> psycopg.Connection[Any]:
        if self._admin is None or self._admin.closed or self._admin.broken:
            self._admin = psycopg.connect(self.url, autocommit=True,
                                          application_name=ADMIN_NAME, connect_timeout=5)
        return self._admin

    def _close_admin(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def _drop_round(self) -> None:
        conn = self._admin_conn()
        rows = conn.execute(
            "SELECT pid, application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            "   AND application_name IN (%s, %s)", (LISTENER_NAME, POOL_NAME)).fetchall()
        listeners = [pid for pid, name in rows if name == LISTENER_NAME]
        pooled = [pid for pid, name in rows if name == POOL_NAME]
        victims = self._drop_rng.sample(pooled, min(len(pooled), self.pooled_per_round))
        targets = listeners + victims
        if not targets:
            return
        killed = conn.execute(
            "SELECT pid FROM unnest(%s::int[]) AS t(pid) WHERE pg_terminate_backend(pid)",
            (targets,)).fetchall()
        gone = {pid for (pid,) in killed}
        self.stats.listener_drops += sum(1 for pid in listeners if pid in gone)
        self.stats.pool_drops += sum(1 for pid in victims if pid in gone)
        self.stats.drop_rounds += 1

    def _restart_server(self) -> None:
        self._restart_tried = True
        self._close_admin()
        self.restarting.set()
        began = time.monotonic()
        try:
            logger.info("restarting PostgreSQL (pg_ctl restart -m fast)")
            self._restart()
            self.stats.restarts += 1
        except Exception as exc:  # noqa: BLE001 - reported; the run fails its minimum
            self.stats.errors.append(f"restart: {exc!r}")
            logger.error("restarting PostgreSQL failed: %s", exc)
        finally:
            self.stats.restart_seconds = time.monotonic() - began
            self.restarting.clear()
