"""Turning results into tables (Markdown), the targets of issue 7, the chart and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._catalog import PER_STEP_KINDS, SEQ_CHART_SIZES, MiB
from ._measure import Result, median, percentile

SYSTEMS = ("perdure-postgres", "perdure-sqlite", "dbos")
LABELS = {"perdure-postgres": "perdure (Postgres)", "perdure-sqlite": "perdure (SQLite)",
          "dbos": "DBOS (Postgres)"}


@dataclass
class Summary:
    result: Result

    @property
    def ok(self) -> bool:
        return self.result.error is None and bool(self.result.samples)

    @property
    def median(self) -> float:
        return median(self.result.samples)

    @property
    def p95(self) -> float:
        return percentile(self.result.samples, 95)

    @property
    def p99(self) -> float:
        return percentile(self.result.samples, 99)

    @property
    def ms_per_step(self) -> float | None:
        r = self.result
        if r.kind in PER_STEP_KINDS and r.steps > 1:
            return self.median / r.steps
        return None

    @property
    def commits_per_run(self) -> float | None:
        r = self.result
        return r.commits / r.commit_runs if r.commits is not None and r.commit_runs else None

    @property
    def commits_per_step(self) -> float | None:
        per_run = self.commits_per_run
        steps = self.result.steps
        return per_run / steps if per_run is not None and steps > 0 else None

    @property
    def mb_per_s(self) -> float | None:
        if self.result.kind != "stream-1mb":
            return None
        return float(self.result.extra.get("bytes", MiB)) / 1e6 / (self.median / 1000.0)

    @property
    def note(self) -> str:
        r = self.result
        if r.error:
            return f"FAILED: {r.error}"[:80]
        if r.kind == "stream-latency":
            return f"per chunk: p50 {self.median:.2f} / p99 {self.p99:.2f} ms"
        if r.kind == "stream-1mb":
            return f"{self.mb_per_s:.0f} MB/s"
        if r.kind == "throughput":
            note = f"{r.extra.get('workflows_per_s', 0):.0f} workflows/s"
            if "cpu_ms_postgres" in r.extra and r.system == "perdure-postgres":
                note += (f"; CPU ms/run: pg {r.extra['cpu_ms_postgres']:.2f}, "
                         f"workers {r.extra['cpu_ms_workers']:.2f}")
            return note
        return ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"system": self.result.system, "shape": self.result.shape}
        if self.ok:
            out.update(median_ms=self.median, p95_ms=self.p95, p99_ms=self.p99,
                       ms_per_step=self.ms_per_step, commits_per_run=self.commits_per_run,
                       commits_per_step=self.commits_per_step, note=self.note)
        else:
            out["error"] = self.result.error
        return out


class Report:
    def __init__(self, results: Iterable[Result], meta: dict[str, Any]) -> None:
        self.results = list(results)
        self.meta = meta
        self.by: dict[tuple[str, str], Summary] = {
            (r.system, r.shape): Summary(r) for r in self.results}
        self.shapes: list[str] = []
        for r in self.results:
            if r.shape not in self.shapes:
                self.shapes.append(r.shape)

    def get(self, system: str, shape: str) -> Summary | None:
        s = self.by.get((system, shape))
        return s if s is not None and s.ok else None

    def systems(self) -> list[str]:
        present = {r.system for r in self.results}
        return [s for s in SYSTEMS if s in present]

    # == tables ===============================================================
    def tables(self) -> str:
        parts = []
        dbos = "dbos" in self.systems()
        for system in self.systems():
            compare = dbos and system != "dbos"
            parts.append(f"### {LABELS[system]}\n\n" + self._system_table(system, compare))
        if {"perdure-postgres", "perdure-sqlite"} <= set(self.systems()):
            parts.append("### SQLite against Postgres (perdure)\n\n" + self._backend_table())
        return "\n\n".join(parts)

    def _system_table(self, system: str, compare: bool) -> str:
        head = ["shape", "iter", "median ms", "p95 ms", "ms/step", "commits/run",
                "commits/step", "note"]
        if compare:
            head += ["DBOS median ms", "DBOS/perdure"]
        rows = []
        for shape in self.shapes:
            s = self.by.get((system, shape))
            if s is None:
                continue
            if not s.ok:
                rows.append([shape, "", "", "", "", "", "", s.note] + (["", ""] if compare else []))
                continue
            row = [shape, str(s.result.iterations), _f(s.median), _f(s.p95), _f(s.ms_per_step, 3),
                   _f(s.commits_per_run, 1), _f(s.commits_per_step, 2), s.note]
            if compare:
                d = self.get("dbos", shape)
                row += [_f(d.median) if d else "", _f(d.median / s.median, 1) + "x" if d else ""]
            rows.append(row)
        return _markdown(head, rows)

    def _backend_table(self) -> str:
        rows = []
        for shape in self.shapes:
            lite, pg = self.get("perdure-sqlite", shape), self.get("perdure-postgres", shape)
            if lite is None or pg is None:
                continue
            ratio = _f(pg.median / lite.median, 2) + "x"
            rows.append([shape, _f(lite.median), _f(pg.median), ratio])
        return _markdown(["shape", "SQLite median ms", "Postgres median ms", "Postgres/SQLite"],
                         rows)

    # == targets ==============================================================
    def targets(self) -> list[dict[str, Any]]:
        pg, out = "perdure-postgres", []

        def add(name: str, measured: float | None, limit: float, *, at_least: bool = False,
                unit: str = "ms", fmt: str = "{:.2f}", shape: str | None = None) -> None:
            met = None if measured is None else (
                measured >= limit if at_least else measured <= limit)
            out.append({"target": name, "limit": limit, "measured": measured, "met": met,
                        "text": "n/a" if measured is None else fmt.format(measured) + f" {unit}",
                        "by": None if measured is None or met else (
                            limit / measured if at_least else measured / limit),
                        "shape": shape})

        seq50 = self.get(pg, "seq-50")
        add("sequential step overhead <= 0.5 ms (seq-50, median/50)",
            seq50.ms_per_step if seq50 else None, 0.5, unit="ms/step", fmt="{:.3f}",
            shape="seq-50")
        dbos50 = self.get("dbos", "seq-50")
        add("sequential steps >= 5x faster than DBOS (seq-50)",
            dbos50.median / seq50.median if seq50 and dbos50 else None, 5.0, at_least=True,
            unit="x", fmt="{:.1f}", shape="seq-50")
        nostep = self.get(pg, "no-step")
        add("no-step workflow <= 1.5 ms", nostep.median if nostep else None, 1.5,
            shape="no-step")
        g50 = self.get(pg, "gather-50")
        add("gather of 50 steps <= 15 ms", g50.median if g50 else None, 15.0,
            shape="gather-50")
        p10 = self.get(pg, "payload-seq-10")
        add("ten 10 KB payload steps <= 6 ms", p10.median if p10 else None, 6.0,
            shape="payload-seq-10")
        tp = self.get(pg, "throughput-2w")
        add(">= 2,000 one-step workflows/s with 2 workers",
            tp.result.extra.get("workflows_per_s") if tp else None, 2000.0, at_least=True,
            unit="workflows/s", fmt="{:.0f}", shape="throughput-2w")
        lat = self.get(pg, "stream-latency")
        add("stream write to live reader p50 <= 1 ms", lat.median if lat else None, 1.0,
            shape="stream-latency")
        add("stream write to live reader p99 <= 5 ms", lat.p99 if lat else None, 5.0,
            shape="stream-latency")
        bulk = self.get(pg, "stream-1mb")
        add(">= 100 MB/s for a 1 MB stream", bulk.mb_per_s if bulk else None, 100.0,
            at_least=True, unit="MB/s", fmt="{:.0f}", shape="stream-1mb")
        add("per-step time at 1,000 steps within 1.25x of 10 steps (marginal)",
            self._flatness(pg), 1.25, unit="x", fmt="{:.2f}", shape="seq-1000")
        add("<= 1.2 commits per sequential step (seq-50, marginal)",
            self.marginal_commits_per_step(pg, 50), 1.2, unit="commits/step",
            shape="seq-50")
        slower = self._sqlite_slower()
        if slower is not None:
            out.append({"target": "SQLite as fast as Postgres on every single-process shape",
                        "limit": 0, "measured": len(slower), "met": not slower,
                        "text": "all shapes" if not slower else
                        f"slower on {len(slower)}: {', '.join(slower)}", "by": None,
                        "shape": None})
        return out

    def marginal_per_step(self, system: str, n: int) -> float | None:
        """(median of seq-n minus median of no-step) / n: the cost a step adds."""
        seq, base = self.get(system, f"seq-{n}"), self.get(system, "no-step")
        if seq is None or base is None:
            return None
        return (seq.median - base.median) / n

    def marginal_commits_per_step(self, system: str, n: int) -> float | None:
        """(commits per run of seq-n minus those of no-step) / n."""
        seq, base = self.get(system, f"seq-{n}"), self.get(system, "no-step")
        if seq is None or base is None:
            return None
        a, b = seq.commits_per_run, base.commits_per_run
        return (a - b) / n if a is not None and b is not None else None

    def _flatness(self, system: str) -> float | None:
        big, small = self.marginal_per_step(system, 1000), self.marginal_per_step(system, 10)
        return big / small if big is not None and small else None

    def _sqlite_slower(self) -> list[str] | None:
        if not {"perdure-postgres", "perdure-sqlite"} <= set(self.systems()):
            return None
        slower = []
        for shape in self.shapes:
            lite, pg = self.get("perdure-sqlite", shape), self.get("perdure-postgres", shape)
            if lite and pg and lite.result.kind != "throughput" and lite.median > pg.median:
                slower.append(shape)
        return slower

    def targets_table(self) -> str:
        rows = []
        for t in self.targets():
            verdict = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
            if t["by"]:
                verdict += f" ({t['by']:.1f}x off)"
            rows.append([t["target"], t["text"], verdict, self._machine_at(t.get("shape"))])
        return _markdown(["target (Postgres)", "measured", "verdict",
                          "floor / CPU reference just before"], rows)

    def _machine_at(self, shape: str | None) -> str:
        """The machine's floor and CPU reference measured right before the shape."""
        now = _machine(self.get("perdure-postgres", shape) if shape else None)
        if not now or now.get("floor_ms") is None:
            return ""
        return f"{now['floor_ms']:.2f} / {now['cpu_reference_ms']:.1f} ms"

    def machine_range(self) -> tuple[list[float], list[float]]:
        """Every floor and CPU reference measured before a shape (empty before this
        was recorded)."""
        floors, cpus = [], []
        for shape in self.shapes:
            now = _machine(self.get("perdure-postgres", shape)
                           or self.get("perdure-sqlite", shape))
            if now:
                if now.get("floor_ms") is not None:
                    floors.append(now["floor_ms"])
                cpus.append(now["cpu_reference_ms"])
        return floors, cpus

    # == outputs ==============================================================
    def header(self) -> str:
        m = self.meta
        mach = m.get("machine", {})
        lines = [f"perdure bench, {m.get('started', '')}, perdure {m.get('perdure_revision')}: "
                 f"{mach.get('cpus')} CPUs "
                 f"({mach.get('cpu', '?')}), Python {mach.get('python')}, "
                 f"load average {mach.get('loadavg')} at start, {m.get('loadavg_end')} at end"]
        pg = m.get("postgres")
        if pg:
            lines.append(f"PostgreSQL {pg.get('server_version')}: fsync={pg.get('fsync')}, "
                         f"synchronous_commit={pg.get('synchronous_commit')}, "
                         f"shared_buffers={pg.get('shared_buffers')}")
        floor = m.get("commit_floor_ms")
        if floor:
            lines.append("single-row INSERT+COMMIT (the floor): "
                         + " / ".join(f"{f:.2f} ms" for f in floor) + " (start / end)")
        cpu = m.get("cpu_reference_ms")
        if cpu:
            lines.append("CPU reference (2,000 JSON round trips of a small document): "
                         + " / ".join(f"{c:.1f} ms" for c in cpu) + " (start / end)")
        floors, refs = self.machine_range()
        if floors or refs:
            parts = [f"floor {min(floors):.2f} to {max(floors):.2f} ms"] if floors else []
            parts.append(f"CPU reference {min(refs):.1f} to {max(refs):.1f} ms")
            lines.append("measured again right before each shape (shorter versions): "
                         + ", ".join(parts))
        load, cpus = mach.get("loadavg"), mach.get("cpus") or 1
        if load and max(load[0], (m.get("loadavg_end") or [0])[0]) > cpus:
            lines.append("WARNING: the machine was busy (load average above the CPU count): "
                         "timings are inflated and noisy")
        if m.get("dbos_version"):
            lines.append(f"DBOS {m['dbos_version']} (database {m.get('dbos_database')})")
        return "\n".join(f"- {line}" for line in lines)

    def text(self) -> str:
        parts = [self.header(), self.tables()]
        if "perdure-postgres" in self.systems():
            parts.append("### Targets (issue 7)\n\n" + self.targets_table())
        return "\n\n".join(parts) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "summary": [s.to_json() for s in self.by.values()],
            "targets": self.targets() if "perdure-postgres" in self.systems() else [],
            "marginal_ms_per_step": {
                system: {n: self.marginal_per_step(system, n) for n in SEQ_CHART_SIZES}
                for system in self.systems()},
            "results": [r.to_json() for r in self.results],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        return cls([Result.from_json(r) for r in data["results"]], data.get("meta", {}))

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    def chart(self, path: Path) -> bool:
        """Milliseconds per step against sequential step count, per system (PNG)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return False
        fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
        styles = {"perdure-postgres": ("tab:blue", "o"), "perdure-sqlite": ("tab:green", "s"),
                  "dbos": ("tab:red", "^")}
        drawn: list[float] = [0.5]
        for system in self.systems():
            points = [(n, s.ms_per_step) for n in SEQ_CHART_SIZES
                      if (s := self.get(system, f"seq-{n}")) is not None and s.ms_per_step]
            if not points:
                continue
            color, marker = styles[system]
            xs = [float(x) for x, _ in points]
            ys = [float(y) for _, y in points if y is not None]
            drawn += ys
            ax.plot(xs, ys, marker=marker, color=color, label=LABELS[system])
            for x, y in points:
                ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=7, color=color)
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="target 0.5 ms (Postgres)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        from matplotlib.ticker import FormatStrFormatter, NullFormatter

        ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
                 if min(drawn) / 2 <= t <= max(drawn) * 2]
        ax.set_yticks(ticks)
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(list(SEQ_CHART_SIZES))
        ax.set_xticklabels([str(n) for n in SEQ_CHART_SIZES])
        ax.set_xlabel("sequential steps in the workflow")
        ax.set_ylabel("ms per step (start to result / steps)")
        ax.set_title("Milliseconds per sequential step (median)")
        ax.grid(True, which="both", alpha=0.3)
        # below the axes, where it hides no point whatever the numbers
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        return True


def _f(value: float | None, digits: int = 2) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}"


def _markdown(head: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep] + [line(r) for r in rows])


def _machine(summary: Summary | None) -> dict[str, Any] | None:
    """The floor and CPU reference taken before the summary's shape (``run``)."""
    return summary.result.extra.get("machine") if summary else None
