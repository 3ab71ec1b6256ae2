"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) into where the time goes.

The profile is recorded without ``--idle``, so every sample is a thread running (or blocked
in a system call such as fsync, which py-spy counts as active). Stacks are grouped by the
thread's role: the first frame in ``flightlog/server/`` (the event loop's ``serve``, the
writer's ``_write_loop``, the run-end ``_pipeline_loop``), else the first Flightlog frame.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

_SKIP = ("threading.py", "runpy", "click/", "flightlog/__main__.py", "flightlog/cli/", "thread (")


def _frame(f: str) -> str:
    # py-spy frames look like "function (path/to/module.py:123)"; drop the line number.
    name, _, where = f.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3.11/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


def _role(frames: list[str]) -> str:
    for f in frames:
        if "flightlog/server/" in f:
            return f
    for f in frames:
        if "flightlog/" in f and not any(s in f for s in _SKIP):
            return f
    return next((f for f in frames if not any(s in f for s in _SKIP)), "other")


def summarize(raw: Path, top: int = 30) -> str:
    """Sample shares per thread role, per function (inclusive) and per leaf (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [_frame(f) for f in stack.split(";") if f]
        frames = [f for f in frames if not f.startswith("thread ")]
        total += count
        roles[_role(frames)] += count
        for f in set(frames):
            if not any(s in f for s in _SKIP):
                inclusive[f] += count
        if frames:
            own[frames[-1]] += count
    if not total:
        return "no samples"
    out = [f"{total} active samples (py-spy, all threads)", "", "by thread role:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in roles.most_common(8)]
    out += ["", "top inclusive:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    out += ["", "top self:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    return "\n".join(out)
