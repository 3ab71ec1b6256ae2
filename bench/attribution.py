"""Attribution accuracy on the scenario suite (tests/scenarios.py).

    python bench/attribution.py [--history N] [--markdown]

Records every scenario with the SDK into a temporary SQLite store, attributes each faulty
run with ``flightlog.forensics.why`` and prints agent-level and step-level exact-match
accuracy (the step must be the faulty step's exact index), per category, and every miss.
Who&When's published figures (chat transcripts, GPT-4o) are printed alongside for context;
they are a different and harder task, not a head-to-head comparison.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # the scenario catalogue lives with the tests

from tests.scenarios import run_suite  # noqa: E402

WHO_WHEN = [  # Algorithm-Generated subset, with ground truth; agent % / step %
    ("Who&When random", 29.10, 12.00),
    ("Who&When all-at-once (GPT-4o)", 54.33, 12.50),
    ("Who&When step-by-step (GPT-4o)", 35.20, 25.51),
    ("Who&When binary search (GPT-4o)", 44.13, 23.98),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--history", type=int, default=10, help="successful runs per scenario")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        results = run_suite(f"sqlite:///{d}/bench.db", history=args.history)
        elapsed = time.perf_counter() - t0
    n = len(results)
    step = sum(o.step_ok for o in results)
    agent = sum(o.agent_ok for o in results)
    raising = [o for o in results if o.scenario.raises_or_checks]
    by_cat: dict[str, list[bool]] = defaultdict(list)
    for o in results:
        by_cat[o.scenario.category].append(o.step_ok)
    print(
        f"scenarios: {n}, history {args.history} successful runs each, "
        f"{elapsed:.1f}s (record + attribute)"
    )
    if args.markdown:
        print("\n| method | agent-level | step-level |\n|---|---:|---:|")
        print(
            f"| Flightlog rule-based attribution (this suite, {n} scenarios) | "
            f"{100 * agent / n:.1f}% | {100 * step / n:.1f}% |"
        )
        for name, a, s in WHO_WHEN:
            print(f"| {name} (Who&When, chat logs) | {a:.2f}% | {s:.2f}% |")
        print("\n| category | scenarios | step-level |\n|---|---:|---:|")
        for cat, oks in sorted(by_cat.items()):
            print(f"| {cat} | {len(oks)} | {sum(oks)}/{len(oks)} |")
    else:
        print(f"agent-level exact match: {agent}/{n} = {100 * agent / n:.1f}%")
        print(f"step-level exact match:  {step}/{n} = {100 * step / n:.1f}%")
        print(
            f"faults that raise or fail a check: {sum(o.step_ok for o in raising)}/{len(raising)}"
        )
        for name, a, s in WHO_WHEN:
            print(f"  for context, {name}: agent {a:.2f}%, step {s:.2f}%")
        for cat, oks in sorted(by_cat.items()):
            print(f"  {cat:<32} {sum(oks)}/{len(oks)}")
    later = [
        o
        for o in results
        if o.attribution.get("failure_point")
        and o.expected_index
        and 2 <= o.attribution["failure_point"]["index"] - o.expected_index <= 4
    ]
    print(
        f"\nfaults surfacing 2-4 steps after their cause: "
        f"{sum(o.step_ok for o in later)}/{len(later)} step-level"
    )
    misses = [o for o in results if not o.step_ok]
    print(f"\nmisses ({len(misses)}):")
    for o in misses:
        print(
            f"  {o.scenario.name}: expected step {o.expected_index} {o.scenario.step} "
            f"({o.scenario.agent}); got {o.got_index} {o.got_step} ({o.got_agent})"
        )
        print(f"    {o.attribution.get('summary')}")


if __name__ == "__main__":
    main()
