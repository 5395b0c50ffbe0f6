"""When a worker's dispatcher claims again: at once, or after a cooldown.

Why: every NOTIFY of a new job wakes every worker, and each one claims. Under
load, with several workers, that hands out jobs one or two at a time and half
the claims find nothing (another worker took the job): the claims, and the
commits of the few runs each one brings, cost more than the runs themselves. A
busy worker that waits a short cooldown after its last claim takes what arrived
meanwhile in one claim, and those runs' first commits are shared.

A lone worker gains little from that and would pay the wait in latency. So the
cooldown applies only while this worker sees the contention: a share of the
claims that followed a wake-up came back empty. Claims after a poll's timeout do
not count (an idle worker's polls find nothing by nature). The share is a moving
average; pacing starts above ``CONTENDED`` and stops below ``UNCONTENDED``, far
apart, so that the fewer empty claims that pacing itself brings do not switch it
off again. Measured on two cores: without pacing one worker's claims after a
wake-up came back empty about 10% of the time, each of two workers' about 47%;
with it, two workers' about 6%.

And it applies only when the wait can pay: the worker has jobs in flight (an
idle worker claims at once) and its last claim took the whole queue (a worker
working through a backlog claims as soon as a slot frees up).
"""

from __future__ import annotations

CONTENDED = 0.25    # share of empty claims after wake-ups above which claims are paced
UNCONTENDED = 0.03  # ... and below which they are not any more
WEIGHT = 1 / 16     # of the newest claim in the moving average


def checked_cooldown(cooldown: float) -> float:
    """``cooldown``, refused when negative (the Engine asks before opening anything)."""
    if cooldown < 0:
        raise ValueError("claim_cooldown must not be negative")
    return cooldown


class ClaimPacing:
    def __init__(self, cooldown: float) -> None:
        self.cooldown = checked_cooldown(cooldown)
        self.empty_share = 0.0  # moving average of empty claims after wake-ups
        self.contended = False
        self._claimed_at: float | None = None  # time.monotonic() of the last claim
        self._took_all = False  # the last claim left free slots: it took the whole queue

    def claimed(self, *, asked: int, got: int, woken: bool, at: float) -> None:
        """A claim of up to ``asked`` jobs that began at ``at`` brought ``got``;
        ``woken``: it followed a wake-up (a NOTIFY, a freed slot), not a poll."""
        self._claimed_at = at
        self._took_all = got < asked
        if not woken:
            return
        self.empty_share += WEIGHT * (float(got == 0) - self.empty_share)
        if self.empty_share > CONTENDED:
            self.contended = True
        elif self.empty_share < UNCONTENDED:
            self.contended = False

    def pause(self, *, busy: bool, now: float) -> float:
        """Seconds to wait before the next claim (0: claim now)."""
        if (self.cooldown <= 0 or not self.contended or not busy or not self._took_all
                or self._claimed_at is None):
            return 0.0
        return max(0.0, self.cooldown - (now - self._claimed_at))
