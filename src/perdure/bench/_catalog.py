"""The shapes the bench measures, as plain data.

Standard library only: the DBOS side (``_dbos_program.py``, run by the benchmark
virtualenv's Python, where perdure is not installed) imports this module as a
sibling file, so both systems run exactly the same list with the same sizes.

A shape has a ``kind`` (how it is driven: ``seq``, ``gather``, ``race``, ...) and
its parameters. Each side implements every kind once.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field, replace
from typing import Any

KiB = 1024
MiB = 1024 * KiB

# Kinds whose timing divided by the step count is a meaningful "ms per step".
PER_STEP_KINDS = frozenset({"seq", "gather", "race", "payload-seq", "payload-gather"})
# Kinds that need worker processes (everything else runs on an in-process engine).
PROCESS_KINDS = frozenset({"throughput"})
# Client threads starting a throughput shape's runs, for perdure and DBOS alike. The
# client is the load generator: with 4 threads, each waiting for its start's commit,
# the client's own commits bounded perdure's two workers (1,356 workflows/s, against
# 1,677 with 8 threads and 2,097 with 16, one machine, back to back).
STARTERS = 16


@dataclass(frozen=True)
class Shape:
    name: str
    kind: str
    n: int = 0                      # steps, streams, chunks or workflows, by kind
    params: dict[str, Any] = field(default_factory=dict)
    warmup: int = 2                 # untimed iterations first
    min_iterations: int = 5         # at least this many, whatever the time budget
    quick: bool = True              # part of --quick

    @property
    def steps(self) -> int:
        """Steps one iteration executes (for ms/step and commits/step)."""
        if self.kind in PER_STEP_KINDS:
            return self.n
        if self.kind == "stream-pipeline":
            return int(self.params["stages"]) + 1
        if self.kind == "streams-parallel":
            return self.n
        if self.kind == "streams-fan":
            return self.n + 1
        if self.kind == "throughput":
            return self.n
        return 1 if self.kind.startswith("stream") else 0

    @property
    def per_step(self) -> bool:
        return self.kind in PER_STEP_KINDS and self.n > 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Shape:
        return cls(**data)


def _seq(n: int, **kw: Any) -> Shape:
    return Shape("no-step" if n == 0 else f"seq-{n}", "seq", n, **kw)


SHAPES: list[Shape] = [
    _seq(0),
    _seq(1),
    _seq(10),
    _seq(25),
    _seq(50, quick=False),
    _seq(100, quick=False),
    _seq(1000, warmup=0, min_iterations=3, quick=False),
    *(Shape(f"gather-{n}", "gather", n, quick=n <= 25) for n in (10, 25, 50, 100)),
    *(Shape(f"race-{n}", "race", n, quick=n <= 10) for n in (10, 25, 50)),
    *(Shape(f"payload-seq-{n}", "payload-seq", n, {"size": 10 * KiB}, quick=n <= 10)
      for n in (10, 25, 50)),
    *(Shape(f"payload-gather-{n}", "payload-gather", n, {"size": 10 * KiB}, quick=n <= 10)
      for n in (10, 25, 50)),
    Shape("stream-ttfc", "stream-ttfc"),
    Shape("stream-pipeline", "stream-pipeline", 0,
          {"stages": 5, "bytes": MiB, "chunk": 64 * KiB}),
    Shape("streams-parallel-10", "streams-parallel", 10, {"bytes": MiB, "chunk": 64 * KiB},
          min_iterations=3),
    Shape("streams-fan-10", "streams-fan", 10, {"bytes": 128 * KiB, "chunk": 16 * KiB}),
    Shape("stream-latency", "stream-latency", 200, {"gap": 0.002}, warmup=1, min_iterations=3),
    Shape("stream-1mb", "stream-1mb", 0, {"bytes": MiB, "chunk": 64 * KiB}),
    # min_iterations: rounds of n runs on the same workers, the median reported
    Shape("throughput-1w", "throughput", 2000, {"workers": 1}, warmup=0, min_iterations=3),
    Shape("throughput-2w", "throughput", 2000, {"workers": 2}, warmup=0, min_iterations=3),
]

SEQ_CHART_SIZES = (10, 25, 50, 100, 1000)


def _quick(shape: Shape) -> Shape:
    """The small version for --quick: a smoke test, not a measurement."""
    params = dict(shape.params)
    n = shape.n
    if "bytes" in params:
        params["bytes"] = min(params["bytes"], 64 * KiB)
        params["chunk"] = min(params["chunk"], 16 * KiB)
    if shape.kind == "stream-latency":
        n = 20
    if shape.kind == "throughput":
        n = 40
    return replace(shape, n=n, params=params, warmup=min(shape.warmup, 1), min_iterations=1)


def select(patterns: str | None, *, quick: bool) -> list[Shape]:
    """The shapes matching comma-separated names or globs (all when None)."""
    pool = SHAPES
    if patterns:
        wanted = [p.strip() for p in patterns.split(",") if p.strip()]
        unknown = [p for p in wanted if not any(fnmatch.fnmatch(s.name, p) for s in SHAPES)]
        if unknown:
            names = ", ".join(s.name for s in SHAPES)
            raise ValueError(f"no shape matches {', '.join(unknown)}; shapes: {names}")
        pool = [s for s in SHAPES if any(fnmatch.fnmatch(s.name, p) for p in wanted)]
    elif quick:
        pool = [s for s in SHAPES if s.quick]
    return [_quick(s) for s in pool] if quick else list(pool)
