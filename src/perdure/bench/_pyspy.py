"""Top functions of a py-spy profile: ``python -m perdure.bench._pyspy FILE``.

FILE is ``py-spy record --format raw`` output (collapsed stacks with counts).
Only stacks that pass through a frame containing ``--within`` (default: the
worker's job threads, ``_run_job`` / ``_run_chain``) are counted. Prints the
functions with the most samples on top of the stack (self) and anywhere in it
(inclusive), as shares of those stacks. Record with ``--idle`` to see the time
spent waiting on the database as well as the CPU time.

    py-spy record --idle --format raw -r 200 -o seq.raw -- \\
        python -m perdure.bench._calls seq-100 --iterations 20
    python -m perdure.bench._pyspy seq.raw
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{m.group('fn')} ({short})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--within", default="_run_job,_run_chain",
                        help="comma-separated substrings; a stack counts when a frame has one")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    needles = [n for n in args.within.split(",") if n]
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    total = 0
    with open(args.file, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            frames = [f for f in stack.split(";") if not f.startswith("thread (")]
            if needles and not any(n in f for f in frames for n in needles):
                continue
            count = int(count_text)
            total += count
            names = [_name(f) for f in frames]
            if names:
                self_counts[names[-1]] += count
            for name in set(names):
                incl_counts[name] += count
    if not total:
        print("no matching samples")
        return
    print(f"{total} samples in stacks through {', '.join(needles) or 'anything'}")
    for title, counts in (("self", self_counts), ("inclusive", incl_counts)):
        print(f"\n{title:>9}  function")
        for name, count in counts.most_common(args.top):
            print(f"{100.0 * count / total:8.1f}%  {name}")


if __name__ == "__main__":
    main()
