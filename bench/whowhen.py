"""Conversation attribution on a Who&When subset (no model), scored honestly.

    python bench/whowhen.py [--dir .../whowhen/Algorithm-Generated] [--markdown]

Each failure log is imported as a run (``flightlog.forensics.transcripts``: messages that carry
``name``, or only ``role`` as Magentic-One logs do) and attributed by ``flightlog.forensics.why``,
the same path as ``flightlog import`` + ``flightlog why``. The agent is scored by exact match;
the step (``mistake_step``, a 0-based index into ``history``; step k is history[k - 1]) by exact
match, and within ±1 and ±3 messages. 95% Wilson intervals. The logs are split by file number:
odd numbers are the half the rules were designed on ("dev"), even numbers the other half; both
are printed, and the whole subset. Model-free baselines are computed on the same files; the
published GPT-4o rows (Who&When paper, Table 1, with ground truth) are printed beside them.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from flightlog.app import open_store  # noqa: E402
from flightlog.forensics import why  # noqa: E402
from flightlog.forensics.conversation import read_messages  # noqa: E402
from flightlog.forensics.transcripts import normalise, transcript_batch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "tests" / "data" / "whowhen" / "Algorithm-Generated"
# GPT-4o, with ground truth: agent %, step % (the paper's Table 1, as quoted by the test data's
# README). Published random for Algorithm-Generated is 29.10 / 19.06 as printed.
PUBLISHED: dict[str, list[tuple[str, float, float]]] = {
    "Algorithm-Generated": [
        ("random (published)", 29.10, 19.06),
        ("all-at-once, GPT-4o (published)", 54.33, 12.50),
        ("step-by-step, GPT-4o (published)", 35.20, 25.51),
        ("binary search, GPT-4o (published)", 44.13, 23.98),
    ],
}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for k successes out of n."""
    if n == 0:
        return 0.0, 0.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


@dataclass
class Score:
    n: int = 0
    agent: int = 0
    exact: int = 0
    pm1: int = 0
    pm3: int = 0
    ev_agent: float = 0.0  # expected values (random guess)
    ev_step: float = 0.0
    has_step: bool = True
    misses: list[str] = field(default_factory=list)

    def add(self, agent_ok: bool, step: int | None, truth: int) -> None:
        self.n += 1
        self.agent += agent_ok
        if step is not None:
            d = abs(step - truth)
            self.exact += d == 0
            self.pm1 += d <= 1
            self.pm3 += d <= 3

    def cell(self, k: int) -> str:
        lo, hi = wilson(k, self.n)
        return f"{100 * k / self.n:.1f}% ({100 * lo:.0f}–{100 * hi:.0f})"


def _number(p: Path) -> int:
    m = re.search(r"\d+", p.stem)
    return int(m.group()) if m else 0


def baselines(data: dict[str, Any]) -> dict[str, tuple[str | None, int | None]]:
    """Model-free guesses (agent, 0-based step) for one log."""
    raw, _ = normalise(data, "whowhen")
    msgs = read_messages(raw)
    work = [m for m in msgs if m.kind == "work"]
    first = work[0] if work else None
    counts = Counter(m.agent for m in msgs if m.kind in ("work", "task"))
    frequent = (
        max(counts, key=lambda a: (counts[a], -min(m.index for m in msgs if m.agent == a)))
        if counts
        else None
    )
    return {
        "first worker turn": (first.agent if first else None, first.index if first else None),
        "most frequent speaker (work messages)": (frequent, None),
        "constant step 1": (None, 1),
    }


def evaluate(files: list[Path], split: str, judge: Any = None) -> tuple[dict[str, Score], int]:
    scores: dict[str, Score] = {"flightlog": Score()}
    tokens = calls = 0
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{d}/ww.db")
        try:
            for f in files:
                data = json.loads(f.read_text(encoding="utf-8"))
                truth_agent = str(data["mistake_agent"])
                truth_step = int(data["mistake_step"])
                batch = transcript_batch(data, workflow="who-and-when", key=f.name)
                store.write(batch)
                att = why(store, batch.runs[0].id)
                rc = att.root_cause
                s = scores["flightlog"]
                step = rc.index - 1 if rc else None
                s.add(bool(rc and rc.agent == truth_agent), step, truth_step)
                if rc and rc.index - 1 != truth_step:
                    s.misses.append(f.name)
                if judge is not None:
                    from flightlog.forensics.judge import judge_attribution

                    j = judge_attribution(store, att, judge)
                    jrc = j.root_cause
                    label = f"Flightlog + LLM judge ({judge.mode}, {judge.model})"
                    js = scores.setdefault(label, Score())
                    js.add(
                        bool(jrc and jrc.agent == truth_agent),
                        jrc.index - 1 if jrc else None,
                        truth_step,
                    )
                    used = re.search(r"(\d+) prompt \+ (\d+) completion", j.evidence[-1])
                    tokens += int(used.group(1)) + int(used.group(2)) if used else 0
                    calls += 1
                names = {str(m.get("name") or m.get("role")) for m in data["history"]}
                r = scores.setdefault("random guess (expected value)", Score())
                r.n += 1
                r.ev_agent += 1 / max(1, len(names))
                r.ev_step += 1 / max(1, len(data["history"]))
                for name, (agent, step) in baselines(data).items():
                    b = scores.setdefault(name, Score(has_step=step is not None))
                    b.add(agent == truth_agent, step, truth_step)
        finally:
            store.close()
    if judge is not None and calls:
        print(f"{split}: LLM judge used {tokens} tokens over {calls} runs", file=sys.stderr)
    return scores, len(files)


def table(title: str, scores: dict[str, Score], n: int, published: bool) -> list[str]:
    out = [
        f"**{title}** ({n} logs)",
        "",
        "| method | agent | step exact | step ±1 | step ±3 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in scores.items():
        label = "Flightlog conversation rules (no model)" if name == "flightlog" else name
        if name.startswith("random"):
            out.append(
                f"| {label} | {100 * s.ev_agent / s.n:.1f}% | {100 * s.ev_step / s.n:.1f}% "
                "| - | - |"
            )
            continue
        agent = s.cell(s.agent) if s.agent or not s.has_step else s.cell(s.agent)
        if name == "constant step 1":
            agent = "-"
        steps = (
            f"{s.cell(s.exact)} | {s.cell(s.pm1)} | {s.cell(s.pm3)}" if s.has_step else "- | - | -"
        )
        out.append(f"| {label} | {agent} | {steps} |")
    if published:
        rows = PUBLISHED.get(title.split(" — ")[0], [])
        for label, a, st in rows:
            out.append(f"| {label} | {a:.2f}% | {st:.2f}% | - | - |")
        if not rows:
            out += ["", "(no published rows recorded for this subset: see the paper's Table 1)"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    here = DEFAULT
    ap.add_argument("--dir", type=Path, default=here, help="a Who&When subset directory")
    ap.add_argument("--misses", action="store_true", help="list the logs whose step was missed")
    ap.add_argument(
        "--judge",
        choices=("candidates", "all-at-once", "step-by-step", "binary-search"),
        help="also score the LLM judge configured in flightlog.toml ([judge] url, model) in "
        "this mode (off by default; it calls the endpoint)",
    )
    args = ap.parse_args()
    judge = None
    if args.judge:
        import dataclasses

        from flightlog.forensics.judge import settings_from_config

        base = settings_from_config(force=True)
        assert base is not None
        judge = dataclasses.replace(base, mode=args.judge)
    files = sorted(args.dir.glob("*.json"), key=_number)
    if not files:
        raise SystemExit(f"no *.json logs in {args.dir}")
    title = args.dir.resolve().name
    dev = [f for f in files if _number(f) % 2 == 1]
    other = [f for f in files if _number(f) % 2 == 0]
    lines: list[str] = []
    for label, subset, pub in (
        (title, files, True),
        (f"{title} — dev half (odd file numbers; the rules were designed on these)", dev, False),
        (f"{title} — other half (even file numbers)", other, False),
    ):
        if not subset:
            continue
        scores, n = evaluate(subset, label, judge)
        lines += table(label, scores, n, pub)
        if args.misses:
            lines.append("missed steps: " + " ".join(scores["flightlog"].misses))
        lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
