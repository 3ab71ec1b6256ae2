"""The board report over a store with runs, an incident, an SLO and a fire drill: Markdown,
JSON, HTML rendered in headless Chromium at 1280 px (no script errors), PDF printed by
Chromium."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.drills.test_drill_cli import drill_file

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="headless Chromium is not installed (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("board")
    db = f"sqlite:///{tmp / 'home.db'}"
    assert run_cli("demo", "--db", db).returncode == 0
    f = drill_file(tmp / "drill.toml", [{"step": "search_policy", "kind": "empty"}], runs=2)
    assert run_cli("drill", str(f), "--db", db).returncode == 0
    cfg = tmp / "flightlog.toml"
    cfg.write_text(
        '[reliability]\ncost_per_failure = 40\ncurrency = "EUR"\n\n'
        '[[slo]]\nworkflow = "claims-triage"\ntarget = 0.99\nwindow = "7d"\nmin_runs = 5\n'
    )
    return db, cfg


def test_markdown_and_json(home: tuple[str, Path]) -> None:
    db, cfg = home
    md = run_cli("report", "--period", "7d", "--db", db, "--config", str(cfg))
    assert md.returncode == 0, md.stderr
    text = md.stdout
    assert "| claims-triage | 95.2% of 21 |" in text
    assert "claims-triage: 95.2% against 99.00% (NOT met)" in text
    assert "| search-team | 1 | 100% |" in text
    assert "configured cost of failures: 40.00 EUR" in text
    assert "| claims demo |" in text and "| passed | 2 | 100% | 100% | 100% |" in text
    assert "MTTD" in text and "**MTTR**" in text and "## Audit ledger" in text
    data = json.loads(
        run_cli(
            "report", "--period", "7d", "--db", db, "--config", str(cfg), "--format", "json"
        ).stdout
    )
    (inc,) = [i for i in data["incidents"]["items"] if i["kind"] == "run failure"]
    assert inc["owner"] == "search-team" and inc["detect_ns"] is not None
    assert data["drills"][0]["passed"] is True
    assert data["audit"]["enabled"] is True and data["audit"]["entries"] > 0
    bad = run_cli("report", "--period", "soon", "--db", db)
    assert bad.returncode == 2 and "7d" in bad.stderr


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", head[16:24])
    return int(w), int(h)


@needs_browser
def test_html_in_chromium_at_1280(home: tuple[str, Path], tmp_path: Path) -> None:
    db, cfg = home
    page = tmp_path / "board.html"
    p = run_cli(
        "report",
        "--period",
        "7d",
        "--db",
        db,
        "--config",
        str(cfg),
        "--format",
        "html",
        "--out",
        str(page),
    )
    assert p.returncode == 0, p.stderr
    doc = page.read_text()
    assert "<script" not in doc.lower() and doc.count("<svg") >= 2
    assert "max-width:1180px" in doc  # the text column fits a 1280 px window
    assert all(int(w) <= 1000 for w in __import__("re").findall(r"<svg[^>]* width='(\d+)'", doc))
    shot = tmp_path / "board.png"
    run = subprocess.run(
        [
            str(BROWSER),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), run.stderr[-2000:]
    assert _png_size(shot) == (1280, 2400)
    assert "Uncaught" not in run.stderr and "CONSOLE" not in run.stderr
    dom = subprocess.run(
        [str(BROWSER), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "<title>Reliability report" in dom and "What the terms mean" in dom


@needs_browser
def test_pdf_through_chromium(home: tuple[str, Path], tmp_path: Path) -> None:
    db, cfg = home
    out = tmp_path / "board.pdf"
    p = run_cli(
        "report",
        "--period",
        "7d",
        "--db",
        db,
        "--config",
        str(cfg),
        "--format",
        "pdf",
        "--out",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and b"/Type /Page" in data
    assert run_cli("report", "--period", "7d", "--db", db, "--format", "pdf").returncode == 2
