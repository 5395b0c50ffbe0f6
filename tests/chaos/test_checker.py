"""The chaos checker catches what it claims to: each kind of damage, planted in a
log, a stream or the side effects, is reported under its own name."""

from __future__ import annotations

from perdure.chaos import workload
from perdure.chaos._checks import (
    CORRUPTED,
    DUPLICATED,
    EXCESS,
    LOST,
    CheckResult,
    _compare_chunks,
    _pid_of,
    check_jobs,
    check_log,
)
from perdure.world import Event


def _log(*specs: tuple[str, str | None]) -> list[Event]:
    return [Event("r", i, kind, cid, {}, float(i)) for i, (kind, cid) in enumerate(specs, 1)]


GOOD = [("run_created", None), ("run_started", None), ("step_created", "s1"),
        ("step_started", "s1"), ("step_retrying", "s1"), ("step_started", "s1"),
        ("step_completed", "s1"), ("wait_created", "w2"), ("wait_completed", "w2"),
        ("hook_created", "h3"), ("hook_received", "h3"), ("hook_disposed", "h3"),
        ("run_completed", None)]


def _kinds(events: list[Event]) -> tuple[CheckResult, list[str]]:
    out = CheckResult()
    check_log(events, out, "r")
    return out, [f.kind for f in out.findings]


def test_a_legal_log_passes_and_counts_starts() -> None:
    out = CheckResult()
    assert check_log(_log(*GOOD), out, "r") == {"s1": 2}
    assert out.findings == []


def test_seq_hole_is_corruption() -> None:
    events = _log(*GOOD)
    del events[4]
    assert CORRUPTED in _kinds(events)[1]


def test_event_after_the_end_is_corruption() -> None:
    _, kinds = _kinds(_log(*GOOD, ("step_started", "s1")))
    assert kinds == [CORRUPTED]


def test_started_after_completed_is_corruption() -> None:
    specs = list(GOOD)
    specs.insert(7, ("step_started", "s1"))  # the field's report 001
    assert _kinds(_log(*specs))[1] == [CORRUPTED]


def test_second_terminal_event_is_a_duplicated_result() -> None:
    specs = list(GOOD)
    specs.insert(7, ("step_completed", "s1"))
    assert _kinds(_log(*specs))[1] == [DUPLICATED]
    assert _kinds(_log(*GOOD[:-1], ("run_completed", None), ("run_completed", None)))[1] \
        == [DUPLICATED]


def test_second_creation_and_second_payload_are_duplicates() -> None:
    specs = list(GOOD)
    specs.insert(3, ("step_created", "s1"))
    assert DUPLICATED in _kinds(_log(*specs))[1]
    specs = list(GOOD)
    specs.insert(11, ("hook_received", "h3"))
    assert _kinds(_log(*specs))[1] == [DUPLICATED]


def test_missing_terminal_events_and_payloads_are_reported() -> None:
    specs = [s for s in GOOD if s != ("hook_received", "h3")]
    assert _kinds(_log(*specs))[1] == [LOST]
    assert LOST in _kinds(_log(*GOOD[:-1]))[1]            # the run never ended
    specs = [s for s in GOOD if s != ("wait_completed", "w2")]
    assert CORRUPTED in _kinds(_log(*specs))[1]


def test_chunks_missing_duplicated_or_reordered() -> None:
    want = [workload.chunk("k", i) for i in range(5)]

    def kinds(got: list[object]) -> list[str]:
        out = CheckResult()
        _compare_chunks(got, want, out, "r", "reader")
        return [f.kind for f in out.findings]

    assert kinds(list(want)) == []
    assert kinds(want[:3]) == [LOST]
    assert kinds(want[:3] + want[2:]) == [DUPLICATED]
    assert kinds([want[1], want[0], *want[2:]]) == [CORRUPTED]
    assert kinds([*want, {"run": "other", "i": 0}]) == [CORRUPTED]


def test_jobs_left_name_their_dead_claimer() -> None:
    out = CheckResult()
    check_jobs([(7, "step", "r", "s1", "host:4242:abcd", -3.0, -10.0),
                (8, "workflow", "r", None, None, None, 0.5)], {1}, out)
    assert len(out.findings) == 2
    assert "dead worker host:4242:abcd" in out.findings[0].detail
    assert _pid_of("vm:123:ff") == 123 and _pid_of(None) is None


def test_excess_side_effects_are_their_own_kind() -> None:
    out = CheckResult()
    out.add(EXCESS, "r", "x")
    assert out.count(EXCESS) == 1 and out.bad_runs == ["r"]
