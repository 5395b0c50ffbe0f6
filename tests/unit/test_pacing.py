"""Claim pacing (``_pacing.py``): a cooldown only for a busy worker that other
workers compete with, after a claim that took the whole queue."""

from __future__ import annotations

import pytest

from perdure._pacing import CONTENDED, UNCONTENDED, ClaimPacing


def lose_races(pacing: ClaimPacing, n: int, at: float = 0.0) -> None:
    for _ in range(n):
        pacing.claimed(asked=4, got=0, woken=True, at=at)


def test_a_lone_worker_is_never_paced() -> None:
    pacing = ClaimPacing(0.01)
    for i in range(100):  # one empty claim in ten after a wake-up, as one worker sees
        pacing.claimed(asked=4, got=0 if i % 10 == 0 else 1, woken=True, at=float(i))
    assert pacing.empty_share < CONTENDED and not pacing.contended
    assert pacing.pause(busy=True, now=100.0) == 0.0


def test_lost_races_start_pacing_and_it_lasts_through_few_empty_claims() -> None:
    pacing = ClaimPacing(0.01)
    lose_races(pacing, 8)
    assert pacing.contended
    for i in range(30):  # paced: one empty claim in ten keeps it on
        pacing.claimed(asked=4, got=0 if i % 10 == 0 else 2, woken=True, at=1.0)
    assert pacing.contended
    assert pacing.pause(busy=True, now=1.004) == pytest.approx(0.006)
    assert pacing.pause(busy=True, now=1.02) == 0.0  # the cooldown is over


def test_pacing_stops_when_no_claim_comes_back_empty() -> None:
    pacing = ClaimPacing(0.01)
    lose_races(pacing, 16)
    while pacing.empty_share >= UNCONTENDED:
        pacing.claimed(asked=4, got=1, woken=True, at=2.0)
    assert not pacing.contended
    assert pacing.pause(busy=True, now=2.0) == 0.0


def test_polls_do_not_count() -> None:
    pacing = ClaimPacing(0.01)
    for _ in range(50):  # an idle worker's polls find nothing
        pacing.claimed(asked=4, got=0, woken=False, at=0.0)
    assert pacing.empty_share == 0.0 and not pacing.contended


def test_no_pause_when_idle_working_through_a_backlog_or_turned_off() -> None:
    pacing = ClaimPacing(0.01)
    lose_races(pacing, 16, at=5.0)
    assert pacing.pause(busy=False, now=5.0) == 0.0  # idle: claim at once
    pacing.claimed(asked=4, got=4, woken=True, at=5.0)  # took all it asked for
    assert pacing.pause(busy=True, now=5.0) == 0.0  # a backlog: claim as slots free
    off = ClaimPacing(0.0)
    lose_races(off, 16)
    assert off.pause(busy=True, now=0.0) == 0.0


def test_a_negative_cooldown_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        ClaimPacing(-1.0)
