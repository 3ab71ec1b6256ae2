"""``bench/whowhen.py --dir`` reads any subset: its title comes from the directory, and logs
whose messages carry only ``role`` (Magentic-One) are scored like those that carry ``name``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_on_a_role_only_subset(tmp_path: Path) -> None:
    subset = tmp_path / "Some-Subset"
    subset.mkdir()
    for n, mistake in ((1, 3), (2, 1)):
        log = {
            "question": "q",
            "ground_truth": "a",
            "mistake_agent": "WebSurfer",
            "mistake_step": str(mistake),
            "history": [
                {"role": "human", "content": "q"},
                {"role": "Orchestrator (thought)", "content": "Plan: search."},
                {"role": "Orchestrator (-> WebSurfer)", "content": "Search for q."},
                {"role": "WebSurfer", "content": "I found b."},
                {"role": "Orchestrator (termination condition)", "content": "Final answer: b"},
            ],
        }
        (subset / f"{n}.json").write_text(json.dumps(log))
    p = subprocess.run(
        [sys.executable, str(REPO / "bench" / "whowhen.py"), "--dir", str(subset)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert "**Some-Subset** (2 logs)" in p.stdout and "Algorithm-Generated" not in p.stdout
    row = next(ln for ln in p.stdout.splitlines() if ln.startswith("| Flightlog"))
    # agent right on both, step exact on one (3), within ±3 on both
    assert row.split("|")[2:6] == [
        " 100.0% (34–100) ",
        " 50.0% (9–91) ",
        " 50.0% (9–91) ",
        " 100.0% (34–100) ",
    ], row
