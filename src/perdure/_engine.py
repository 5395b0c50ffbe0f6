"""``Engine``: the client (start, inspect, resume, wait) and, once launched, a worker."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from ._activation import end_run
from ._batcher import create_batcher
from ._decorators import WorkflowFunction, get_workflow, workflow_names
from ._ends import Ends
from ._outcomes import Outcomes
from ._pacing import checked_cooldown
from ._run import Run, RunList
from ._serialization import encode
from ._worker import CLAIM_COOLDOWN, DEFAULT_CONCURRENCY, Worker
from .backends import open_world, resolve_url
from .errors import (
    EntityConflictError,
    HookNotFoundError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from .world import CreateRequest, NewEvent, NewJob, World, dumps, uuid7


class Engine:
    """Starts and inspects runs; ``launch()`` also executes them in this process.

    ``url``: ``postgresql://...`` or ``sqlite:///path``; default from
    ``PERDURE_DATABASE_URL``, else ``sqlite:///.perdure/perdure.db``.
    """

    def __init__(self, url: str | None = None, *, concurrency: int = DEFAULT_CONCURRENCY,
                 lease_seconds: float | None = None, poll_interval: float | None = None,
                 recovery_interval: float = 60.0, webhook_base_url: str | None = None,
                 max_payload_bytes: int | None = None, migrate: bool = True,
                 listen: bool = True, claim_cooldown: float | None = None) -> None:
        if claim_cooldown is not None:
            checked_cooldown(claim_cooldown)  # before anything is opened
        self.url = resolve_url(url)
        self.world: World = open_world(self.url, migrate=migrate, listen=listen)
        is_sqlite = self.url.startswith("sqlite:")
        default_poll = 0.05 if is_sqlite else 1.0
        self.poll_interval = poll_interval if poll_interval is not None else default_poll
        self.lease_seconds = lease_seconds or float(os.environ.get("PERDURE_LEASE_SECONDS", 30))
        self.concurrency = concurrency
        self.claim_cooldown = CLAIM_COOLDOWN if claim_cooldown is None else claim_cooldown
        self.recovery_interval = recovery_interval
        self.webhook_base_url = (webhook_base_url or os.environ.get("PERDURE_WEBHOOK_BASE_URL")
                                 or "http://127.0.0.1:8000")
        self.max_payload_bytes = max_payload_bytes
        self.worker: Worker | None = None
        self.outcomes = Outcomes()  # results of runs this process's worker ended
        self._create = create_batcher(self.world)  # concurrent starts share a commit
        self.ends = Ends(self.world, self.outcomes)  # ends of runs started here, read together
        self.register_workflows()

    # -- lifecycle -------------------------------------------------------------
    def register_workflows(self) -> None:
        """Record the workflows this process knows, for starts by name (and from SQL)."""
        names = workflow_names()
        if names:
            self.world.register_workflows(names)

    def launch(self) -> Engine:
        """Start executing runs in background threads of this process."""
        if self.worker is None:
            self.register_workflows()
            self.worker = Worker(
                self.world, concurrency=self.concurrency, lease_seconds=self.lease_seconds,
                poll_interval=self.poll_interval, recovery_interval=self.recovery_interval,
                webhook_base=self.webhook_base_url, max_payload_bytes=self.max_payload_bytes,
                outcomes=self.outcomes, claim_cooldown=self.claim_cooldown,
            )
            self.worker.start()
        return self

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the worker (finishing in-flight work up to ``timeout``) and close."""
        if self.worker is not None:
            self.worker.stop(timeout)
            self.worker = None
        self.ends.close()
        self.world.close()

    def __enter__(self) -> Engine:
        return self.launch()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- starting ----------------------------------------------------------------
    def _prepare(self, workflow: WorkflowFunction[Any, Any] | str,
                 args: tuple[Any, ...]) -> tuple[str, Any, str]:
        """The workflow's name, its encoded arguments and their JSON."""
        if isinstance(workflow, WorkflowFunction):
            name = workflow.name
        elif isinstance(workflow, str):
            name = workflow
            if get_workflow(name) is None and name not in self.world.registered_workflows():
                raise WorkflowNotFoundError(f"no workflow named {name!r} is registered")
        else:
            raise TypeError("start() takes a @workflow function or a workflow name")
        encoded = encode(list(args), max_bytes=self.max_payload_bytes)
        return name, encoded, dumps(encoded)

    def start(self, workflow: WorkflowFunction[Any, Any] | str, *args: Any,
              idempotency_key: str | None = None, connection: Any = None) -> Run:
        """Start a run; durable once this returns. With ``connection`` (psycopg 3, or a
        SQLAlchemy Connection over psycopg) the start joins the caller's transaction."""
        name, encoded, input_json = self._prepare(workflow, args)
        idempotency_key = _idempotency_key(idempotency_key)
        if connection is not None:
            sql, params = self._start_statement(name, input_json, idempotency_key)
            if hasattr(connection, "exec_driver_sql"):
                # SQLAlchemy Connection: through SQLAlchemy, so it autobegins the
                # transaction its commit() commits.
                row = connection.exec_driver_sql(sql, params).fetchone()
            else:
                conn = _driver_connection(connection)
                if isinstance(conn, psycopg.AsyncConnection):
                    raise TypeError("start(connection=...) needs a sync connection; "
                                    "use start_async() with a psycopg.AsyncConnection")
                row = conn.cursor(row_factory=tuple_row).execute(sql, params).fetchone()
            return Run(self, str(row[0]))
        run_id = uuid7()
        if self.worker is not None:  # executed here: no claim round trip, no wake-up
            local = self.worker.start_run(name, encoded, input_json, run_id, idempotency_key)
            if local is not None:
                return Run(self, local.id, local, local=local.id == run_id)
        self.ends.started(run_id)
        try:
            record, created = self._create(CreateRequest(name, input_json, run_id,
                                                         idempotency_key))
        except BaseException:
            self.ends.forget(run_id)
            raise
        if not created:
            self.ends.forget(run_id)
        return Run(self, record.id, record)

    def _start_statement(self, name: str, input_json: str,
                         key: str | None) -> tuple[str, Any]:
        make = getattr(self.world, "create_run_statement", None)
        if make is None:
            raise TypeError("start(connection=...) needs the Postgres backend")
        return make(name, input_json, uuid7(), key)  # type: ignore[no-any-return]

    async def start_async(self, workflow: WorkflowFunction[Any, Any] | str, *args: Any,
                          idempotency_key: str | None = None, connection: Any = None) -> Run:
        if connection is None:
            return await asyncio.to_thread(self.start, workflow, *args,
                                           idempotency_key=idempotency_key)
        name, _, input_json = await asyncio.to_thread(self._prepare, workflow, args)
        idempotency_key = _idempotency_key(idempotency_key)
        sql, params = self._start_statement(name, input_json, idempotency_key)
        conn = _driver_connection(connection)
        if not isinstance(conn, psycopg.AsyncConnection):
            raise TypeError("start_async(connection=...) needs a psycopg.AsyncConnection; "
                            "use start() with a sync connection")
        cursor = conn.cursor(row_factory=tuple_row)
        await cursor.execute(sql, params)
        row = await cursor.fetchone()
        if row is None:
            raise RuntimeError("the start statement returned no run id")
        return Run(self, str(row[0]))

    # -- inspecting ----------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        record = self.world.get_run(_lookup(run_id, "run id", RunNotFoundError, "no run {!r}"))
        if record is None:
            raise RunNotFoundError(f"no run {run_id}")
        return Run(self, run_id, record)

    def list_runs(self, status: str | None = None, workflow: str | None = None,
                  limit: int = 100, cursor: str | None = None) -> RunList:
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ValueError("limit must be an integer from 1 to 10000")
        page = self.world.list_runs(status=status, workflow=workflow, limit=limit, cursor=cursor)
        runs = RunList(Run(self, r.id, r) for r in page.items)
        runs.next_cursor = page.next_cursor
        return runs

    async def get_run_async(self, run_id: str) -> Run:
        return await asyncio.to_thread(self.get_run, run_id)

    async def list_runs_async(self, status: str | None = None, workflow: str | None = None,
                              limit: int = 100, cursor: str | None = None) -> RunList:
        return await asyncio.to_thread(self.list_runs, status, workflow, limit, cursor)

    # -- steering --------------------------------------------------------------
    def resume_hook(self, token: str, payload: Any = None) -> None:
        """Deliver ``payload`` to the live hook holding ``token``."""
        data = {"payload": encode(payload, max_bytes=self.max_payload_bytes)}
        token = _lookup(token, "hook token", HookNotFoundError, "no live hook with token {!r}")
        hook = self.world.get_hook_by_token(token)
        if hook is None:
            raise HookNotFoundError(f"no live hook with token {token!r}")
        try:
            self.world.append(hook.run_id, [NewEvent("hook_received", hook.correlation_id, data)],
                              jobs=[NewJob("workflow", hook.run_id)])
        except (EntityConflictError, RunNotFoundError) as exc:
            raise HookNotFoundError(f"hook {token!r} is no longer live") from exc

    async def resume_hook_async(self, token: str, payload: Any = None) -> None:
        await asyncio.to_thread(self.resume_hook, token, payload)

    def _cancel(self, run_id: str) -> bool:
        if self.world.get_run(_lookup(run_id, "run id", RunNotFoundError, "no run {!r}")) is None:
            raise RunNotFoundError(f"no run {run_id}")
        cancelled = end_run(self.world, run_id, NewEvent("run_cancelled", None, {}))
        if self.worker is not None:
            self.worker.running.cancel_run(run_id)
        return cancelled


MAX_KEY_LENGTH = 512


def _clean_text(value: Any) -> bool:
    """A string a database can hold in a text column: no NUL, no lone surrogate."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _lookup(value: Any, what: str, not_found: type[Exception], message: str) -> str:
    """An id or token to look up: a string, else ``TypeError``; one that no row
    can hold is simply not found (never a driver error)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    if not value or len(value) > 4 * MAX_KEY_LENGTH or not _clean_text(value):
        raise not_found(message.format(value))
    return value


def _idempotency_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"idempotency_key must be a string, not {type(value).__name__}")
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not _clean_text(value):
        raise ValueError(f"idempotency_key must be 1 to {MAX_KEY_LENGTH} characters of "
                         "text without NUL characters or lone surrogates")
    return value


def _driver_connection(connection: Any) -> Any:
    """A psycopg connection, also when given a SQLAlchemy ``Connection`` over psycopg."""
    inner = getattr(connection, "connection", None)
    driver = getattr(inner, "driver_connection", None)
    return driver if driver is not None else connection
