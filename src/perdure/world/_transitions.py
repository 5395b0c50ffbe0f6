"""Which event may be appended when: the one table both backends enforce.

Backends implement these rules in SQL (a guarded ``UPDATE ... WHERE status IN (...)``
per event type); the conformance suite walks this table and checks every backend
against it, legal and illegal pairs alike, so the SQL cannot drift from it.

Every event other than ``run_created`` also requires the run to exist and not be
terminal (``RUN_TERMINAL``): nothing is ever appended after a run's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Entity = Literal["run", "step", "wait", "hook"]


@dataclass(frozen=True, slots=True)
class Transition:
    entity: Entity
    from_status: frozenset[str] | None  # None: the event creates the entity
    to_status: str


def _t(entity: Entity, sources: tuple[str, ...] | None, to: str) -> Transition:
    return Transition(entity, None if sources is None else frozenset(sources), to)


TRANSITIONS: dict[str, Transition] = {
    "run_created": _t("run", None, "pending"),
    "run_started": _t("run", ("pending",), "running"),
    "run_completed": _t("run", ("pending", "running"), "completed"),
    "run_failed": _t("run", ("pending", "running"), "failed"),
    "run_cancelled": _t("run", ("pending", "running"), "cancelled"),
    "step_created": _t("step", None, "pending"),
    "step_started": _t("step", ("pending", "running"), "running"),
    "step_retrying": _t("step", ("running",), "pending"),
    "step_completed": _t("step", ("running",), "completed"),
    "step_failed": _t("step", ("running",), "failed"),
    "wait_created": _t("wait", None, "waiting"),
    "wait_completed": _t("wait", ("waiting",), "completed"),
    "hook_created": _t("hook", None, "active"),
    "hook_received": _t("hook", ("active",), "active"),
    "hook_disposed": _t("hook", ("active",), "disposed"),
}

EVENT_TYPES: frozenset[str] = frozenset(TRANSITIONS)

# Creation events are unique per (run, correlation id, type).
CREATION_EVENTS: frozenset[str] = frozenset(
    name for name, t in TRANSITIONS.items() if t.from_status is None
)

# Events the workflow body consumes, in seq order, one at a time. Only these move
# ``runs.result_seq``; the cached workflow of a worker guards on it.
RESULT_EVENTS: frozenset[str] = frozenset(
    {"step_completed", "step_failed", "wait_completed", "hook_received"}
)

RUN_TERMINAL_EVENTS: frozenset[str] = frozenset({"run_completed", "run_failed", "run_cancelled"})

# Statuses each entity can be in; the conformance suite builds every pair from these.
STATUSES: dict[Entity, tuple[str, ...]] = {
    "run": ("pending", "running", "completed", "failed", "cancelled"),
    "step": ("pending", "running", "completed", "failed"),
    "wait": ("waiting", "completed"),
    "hook": ("active", "disposed"),
}


def is_legal(event_type: str, current_status: str | None) -> bool:
    """Whether ``event_type`` may be applied to an entity now in ``current_status``.

    ``current_status`` is None when the entity does not exist yet.
    """
    t = TRANSITIONS[event_type]
    if t.from_status is None:
        return current_status is None
    return current_status in t.from_status
