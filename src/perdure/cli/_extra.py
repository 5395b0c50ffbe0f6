"""The subcommands beyond worker/migrate/demo, each from its own module."""

from __future__ import annotations

import importlib

import click

_MODULES = ("_runs", "_hooks", "_streams", "_web", "_bench", "_chaos")


def commands() -> list[click.Command]:
    found: list[click.Command] = []
    for name in _MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(name):
                continue  # not built yet
            raise
        found.extend(getattr(module, "COMMANDS", []))
    return found
