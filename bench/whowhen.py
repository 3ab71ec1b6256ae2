"""Rule-based attribution on Who&When chat transcripts (no model), scored honestly.

    python bench/whowhen.py [--dir /work/shared/testdata/whowhen/Algorithm-Generated]

Imports each failure log as a run (``flightlog.forensics.transcripts``), attributes it with
``flightlog.forensics.why`` and scores exact matches of the agent name and of the step index
(``mistake_step`` is a 0-based index into the history; step k is history[k - 1]). The
published GPT-4o figures and two model-free baselines (from the test data's README) are
printed alongside, computed on the same files where they can be.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from flightlog.forensics import why  # noqa: E402
from flightlog.forensics.transcripts import transcript_batch  # noqa: E402
from flightlog.store import open_store  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "testdata" / "whowhen"
PUBLISHED = [
    ("random (published)", 29.10, 12.00),
    ("all-at-once, GPT-4o (published)", 54.33, 12.50),
    ("step-by-step, GPT-4o (published)", 35.20, 25.51),
    ("binary search, GPT-4o (published)", 44.13, 23.98),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    base = DEFAULT if DEFAULT.exists() else Path("/work/shared/testdata/whowhen")
    ap.add_argument("--dir", type=Path, default=base / "Algorithm-Generated")
    args = ap.parse_args()
    files = sorted(args.dir.glob("*.json"), key=lambda p: int(p.stem))
    agent_ok = step_ok = speaker_ok = step1_ok = 0
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{d}/ww.db")
        for f in files:
            data = json.loads(f.read_text())
            batch = transcript_batch(data, workflow="who-and-when", key=f.stem)
            store.write(batch)
            att = why(store, batch.runs[0].id)
            truth_agent = data["mistake_agent"]
            truth_step = int(data["mistake_step"])
            rc = att.root_cause
            agent_ok += bool(rc and rc.agent == truth_agent)
            step_ok += bool(rc and rc.index - 1 == truth_step)
            speakers = Counter(
                m["name"] for m in data["history"] if "terminal" not in m["name"].lower()
            )
            speaker_ok += bool(speakers and speakers.most_common(1)[0][0] == truth_agent)
            step1_ok += truth_step == 1
        store.close()
    n = len(files)
    print(f"Who&When Algorithm-Generated: {n} failure logs")
    print("| method | agent-level | step-level |\n|---|---:|---:|")
    print(
        f"| Flightlog rule-based attribution (no model) | {100 * agent_ok / n:.1f}% | "
        f"{100 * step_ok / n:.1f}% |"
    )
    print(f"| most frequent non-terminal speaker (baseline) | {100 * speaker_ok / n:.1f}% | - |")
    print(f"| constant step 1 (baseline) | - | {100 * step1_ok / n:.1f}% |")
    for name, a, s in PUBLISHED:
        print(f"| {name} | {a:.2f}% | {s:.2f}% |")


if __name__ == "__main__":
    main()
