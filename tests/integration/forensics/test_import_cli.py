"""``flightlog import``: Who&When transcripts become runs that `why` and `report` explain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOGS = Path(__file__).resolve().parents[2] / "data" / "whowhen" / "Algorithm-Generated"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightlog", *args], capture_output=True, text=True
    )


def test_import_then_why(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ww.db'}"
    files = [str(LOGS / "1.json"), str(LOGS / "2.json")]
    p = _cli("import", *files, "--db", db, "--workflow", "who-and-when", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["file"] for r in rows] == files
    again = json.loads(
        _cli("import", *files, "--db", db, "--workflow", "who-and-when", "--json").stdout
    )
    assert again == rows  # idempotent
    runs = json.loads(_cli("runs", "--db", db, "--json").stdout)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"failed"}
    att = json.loads(_cli("why", rows[0]["run_id"], "--db", db, "--json").stdout)
    history = json.loads((LOGS / "1.json").read_text())["history"]
    assert att["failed"] and att["of_steps"] == len(history)
    assert att["failure_point"]["index"] == len(history) - 1  # the answer before TERMINATE
    assert att["root_cause"]["agent"] == "Excel_Expert" and att["root_cause"]["index"] == 1


def test_import_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = _cli("import", str(bad), "--db", db)
    assert p.returncode == 1 and p.stderr.startswith("error: ") and "is not JSON" in p.stderr
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"history": 3}')
    p = _cli("import", str(wrong), "--db", db)
    assert p.returncode == 1 and "no 'history' list" in p.stderr
    p = _cli("import", str(tmp_path / "missing.json"), "--db", db)
    assert p.returncode == 1 and "cannot read" in p.stderr and "Traceback" not in p.stderr
