"""Find a PostgreSQL server to test against, or start a throwaway one.

Order: ``PERDURE_TEST_DATABASE_URL``; a server on 127.0.0.1:5432 (database
``test``); else a new cluster made with ``initdb`` and run by ``pg_ctl`` in a
temporary folder, removed again by ``stop()``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import psycopg


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _pg_bin(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A server we can connect to; ``owned`` when we started it (and must stop it)."""

    url: str
    owned: bool = False
    datadir: str | None = None
    port: int | None = None
    _tmp: str | None = field(default=None, repr=False)

    def restart(self, mode: str = "fast") -> None:
        if not self.owned or self.datadir is None:
            raise RuntimeError("only a throwaway cluster started here can be restarted")
        pg_ctl = _pg_bin("pg_ctl")
        assert pg_ctl
        subprocess.run(
            [pg_ctl, "-D", self.datadir, "-m", mode, "-w", "-l", f"{self.datadir}/log", "restart"],
            check=True, capture_output=True, **_as_postgres_user(),
        )

    def stop(self) -> None:
        if not self.owned or self.datadir is None:
            return
        pg_ctl = _pg_bin("pg_ctl")
        if pg_ctl:
            subprocess.run([pg_ctl, "-D", self.datadir, "-m", "immediate", "stop"],
                           capture_output=True, **_as_postgres_user())
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self.owned = False


def _as_postgres_user() -> dict[str, Any]:
    """initdb refuses to run as root; drop to the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        return {}
    return {"user": pw.pw_uid, "group": pw.pw_gid}


def start_throwaway_cluster() -> PostgresServer:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("no PostgreSQL server answers and initdb/pg_ctl are not installed")
    tmp = tempfile.mkdtemp(prefix="perdure-pg-")
    datadir, sockdir = os.path.join(tmp, "data"), os.path.join(tmp, "sock")
    os.makedirs(sockdir)
    owner = _as_postgres_user()
    if owner:
        os.chown(tmp, owner["user"], owner["group"])
        os.chown(sockdir, owner["user"], owner["group"])
    subprocess.run([initdb, "-D", datadir, "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, **owner)
    port = _free_port()
    opts = (f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200")
    subprocess.run([pg_ctl, "-D", datadir, "-o", opts, "-w", "-l", f"{datadir}/log", "start"],
                   check=True, capture_output=True, **owner)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return PostgresServer(url=url, owned=True, datadir=datadir, port=port, _tmp=tmp)


def find_or_start_postgres() -> PostgresServer:
    explicit = os.environ.get("PERDURE_TEST_DATABASE_URL")
    if explicit:
        if not _answers(explicit):
            raise RuntimeError(f"PERDURE_TEST_DATABASE_URL does not answer: {explicit}")
        return PostgresServer(url=explicit)
    for url in ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://127.0.0.1:5432/test"):
        if _answers(url):
            return PostgresServer(url=url)
    return start_throwaway_cluster()


def create_database(server_url: str, name: str) -> str:
    """A fresh, empty database next to ``server_url``; returns its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def with_database(url: str, name: str) -> str:
    """``url`` (a postgresql:// URL) pointing at database ``name`` instead."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
