"""Replay a finished run from its log and check the code finds nothing new."""

from __future__ import annotations

from typing import Any

from .._decorators import get_workflow
from .._replay import WorkflowInstance
from .._serialization import decode
from ..world import World


def assert_replays_cleanly(world: World, run_id: str) -> Any:
    """Rebuild the run from its whole log with the loaded code. Raises
    ``AssertionError`` when the code now issues a command the log lacks, or its
    outcome differs; ``NonDeterminismError``/``CorruptedEventLogError`` pass
    through. Returns the replayed outcome."""
    events = world.list_events(run_id)
    assert events and events[0].event_type == "run_created", f"run {run_id}: bad first event"
    data = events[0].data or {}
    wf = get_workflow(str(data.get("workflow")))
    assert wf is not None, f"workflow {data.get('workflow')!r} is not loaded"
    inst = WorkflowInstance(run_id, wf, decode(data.get("input") or []))
    try:
        inst.replay(events)
        batch = inst.take_batch()
        new = [e for e in batch.events if e.event_type != "hook_disposed"]
        assert not new, f"run {run_id}: replay issued new events {[e.event_type for e in new]}"
        last = events[-1]
        if last.event_type == "run_completed":
            assert inst.outcome is not None and inst.outcome[0] == "completed", (
                f"run {run_id}: recorded completed, replay gives {inst.outcome}")
            return inst.outcome[1]
        if last.event_type == "run_failed" and inst.outcome is not None:
            assert inst.outcome[0] == "failed", f"run {run_id}: replay outcome {inst.outcome}"
        return inst.outcome
    finally:
        inst.dispose()
