"""``perdure web``: the HTTP API, webhooks and web UI on uvicorn."""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit, urlunsplit

import click

from .._worker import DEFAULT_CONCURRENCY
from ._common import CliError, open_engine
from ._worker import load_app


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _base_url(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs PERDURE_API_TOKEN.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--app", "app", default=None,
              help="A module or .py file of workflows: load it and run an in-process worker.")
@click.option("--concurrency", default=DEFAULT_CONCURRENCY, show_default=True,
              help="With --app: jobs the in-process worker runs at once.")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=1024 * 1024,
              show_default=True, help="Largest request body accepted (413 beyond).")
@click.option("--public-url", default=None,
              help="Base URL clients reach this server at, for webhook URLs "
                   "(default: PERDURE_WEBHOOK_BASE_URL, else http://HOST:PORT).")
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.pass_context
def web(ctx: click.Context, host: str, port: int, app: str | None, concurrency: int,
        max_body_bytes: int, public_url: str | None, access_log: bool) -> None:
    """Serve the JSON API (/api, /openapi.json), webhooks (/webhooks/TOKEN) and the
    web UI (/). Set PERDURE_API_TOKEN to require a bearer token."""
    import uvicorn

    from ..web import create_app

    token = os.environ.get("PERDURE_API_TOKEN") or None
    if token is None and not is_loopback(host):
        raise CliError(f"refusing to serve on {host} without authentication: set "
                       "PERDURE_API_TOKEN, or bind to 127.0.0.1")
    if app is not None:
        load_app(app)
    sock = _listen(host, port)
    port = sock.getsockname()[1]
    base = public_url or os.environ.get("PERDURE_WEBHOOK_BASE_URL") or _base_url(host, port)
    try:
        engine = open_engine(ctx, webhook_base_url=base.rstrip("/"), concurrency=concurrency)
    except BaseException:
        sock.close()
        raise
    try:
        if app is not None:
            engine.launch()
        asgi = create_app(engine, api_token=token, max_body_bytes=max_body_bytes)
        url = _base_url(host, port)
        if token is None:
            click.echo(f"perdure web on {url}: UNAUTHENTICATED, loopback only "
                       "(set PERDURE_API_TOKEN to require a bearer token)", err=True)
        else:
            click.echo(f"perdure web on {url}: bearer token required on /api", err=True)
        click.echo(f"database {_redact(engine.url)}; webhooks at {base}/webhooks/TOKEN"
                   + ("; running workflows from " + app if app else ""), err=True)
        config = uvicorn.Config(asgi, access_log=access_log, log_level="warning",
                                timeout_graceful_shutdown=3, lifespan="off")
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        engine.shutdown(timeout=10)


def _redact(url: str) -> str:
    """``url`` without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _listen(host: str, port: int) -> socket.socket:
    """Bind before anything else starts, so a busy port is a one-line error."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bare, port))
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {_base_url(host, port)}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


COMMANDS = [web]
