from __future__ import annotations

import importlib
import importlib.util
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType, ModuleType

import click

from .._worker import DEFAULT_CONCURRENCY
from ._common import CliError, open_engine

logger = logging.getLogger(__name__)


def load_app(app: str) -> ModuleType:
    """Import ``app``: a dotted module name, or a path to a .py file."""
    path = Path(app)
    if app.endswith(".py") or path.is_file():
        if not path.is_file():
            raise CliError(f"no such file: {app}")
        resolved = path.resolve()
        name = resolved.stem
        sys.path.insert(0, str(resolved.parent))
        spec = importlib.util.spec_from_file_location(name, resolved)
        if spec is None or spec.loader is None:
            raise CliError(f"cannot import {app}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(app)
    except ImportError as exc:
        raise CliError(f"cannot import {app}: {exc}") from exc


@click.command()
@click.argument("app")
@click.option("--concurrency", default=DEFAULT_CONCURRENCY, show_default=True,
              help="Jobs run at once.")
@click.option("--lease", "lease_seconds", type=float, default=None,
              help="Lease length in seconds (default PERDURE_LEASE_SECONDS or 30).")
@click.option("--poll-interval", type=float, default=None,
              help="Seconds between polls when no wake-up comes.")
@click.option("--claim-cooldown", type=click.FloatRange(min=0), default=None,
              help="Seconds between claims of a busy worker that other workers "
                   "compete with (default 0.01; 0 claims on every wake-up).")
@click.option("--drain-timeout", type=float, default=30.0, show_default=True,
              help="On SIGTERM, seconds to let in-flight work finish.")
@click.pass_context
def worker(ctx: click.Context, app: str, concurrency: int, lease_seconds: float | None,
           poll_interval: float | None, claim_cooldown: float | None,
           drain_timeout: float) -> None:
    """Run workflows defined in APP (a module name or a .py file) until SIGTERM/SIGINT."""
    load_app(app)
    engine = open_engine(ctx, fail_fast=False, concurrency=concurrency, lease_seconds=lease_seconds,
                         poll_interval=poll_interval, claim_cooldown=claim_cooldown)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %s: draining", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    engine.launch()
    assert engine.worker is not None
    click.echo(f"perdure worker {engine.worker.id} running {app} on {engine.url}", err=True)
    while not stop.wait(1.0):
        pass
    engine.shutdown(timeout=drain_timeout)
    click.echo("perdure worker stopped", err=True)
