"""``flightlog demo`` ends with the attribution of its failed run and writes the postmortem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_prints_attribution_and_writes_report(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    p = subprocess.run(
        [sys.executable, "-m", "flightlog", "demo", "--db", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert (
        "failed at step 4 of 7 (validate_claim); root cause step 2 search_policy (agent "
        "retriever, owner search-team): returned 0 documents where it usually returns 3–5"
    ) in p.stdout
    assert "chain: 2 search_policy -> 3 assess_coverage -> 4 validate_claim" in p.stdout
    reports = list((tmp_path / "flightlog-demo").glob("postmortem-*.html"))
    assert len(reports) == 1 and f"Postmortem (HTML): {reports[0]}" in p.stdout
    html = reports[0].read_text()
    assert "returned 0 documents where it usually returns 3–5" in html
