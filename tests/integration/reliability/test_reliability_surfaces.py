"""``flightlog reliability`` (text, JSON, HTML), the REST API and the web UI page, over the
store with known outcomes of ``tests/unit/reliability/known.py``, through a real
``flightlog serve`` process."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flightlog.app import open_store
from tests.conftest import run_cli
from tests.integration.server.conftest import ServerProcess, free_port
from tests.unit.reliability import known

SINCE = "2025-12-31"
UNTIL = "2026-01-05"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rel") / "k.db"
    store = open_store(f"sqlite:///{path}")
    known.build(store)
    store.close()
    return path


def test_cli_text_json_html(db: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{db}"
    proc = run_cli("reliability", "--db", url, "--since", SINCE, "--until", UNTIL)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "end to end: 54.5% clean (6 of 11)" in out
    assert re.search(r"b\s+72\.7%.*reached 11, failed 3", out)
    assert "failures come together" in out
    assert "team-a: 40% (2 failure(s)" in out
    assert "(not attributed): 20% (1 failure(s)" in out
    assert "degraded run(s)" in out

    proc = run_cli("reliability", "w", "--db", url, "--since", SINCE, "--until", UNTIL, "--json")
    data = json.loads(proc.stdout)
    (wf,) = data["workflows"]
    assert wf["end_to_end"]["successes"] == 6 and wf["end_to_end"]["trials"] == 11
    assert {s["step"]: s["failed"] for s in wf["steps"]} == {"a": 2, "b": 3, "c": 2}

    page = tmp_path / "rel.html"
    proc = run_cli(
        "reliability", "--db", url, "--since", SINCE, "--until", UNTIL, "--html", "--out", str(page)
    )
    assert proc.returncode == 0, proc.stderr
    html = page.read_text()
    assert html.count("<svg") >= 3 and "<script" not in html

    proc = run_cli("reliability", "nope", "--db", url, "--since", SINCE, "--until", UNTIL)
    assert proc.returncode == 0
    assert "no runs of workflow 'nope'" in proc.stderr
    assert "no finished runs in this window" in proc.stdout


def test_cli_config_cost_and_bad_config(db: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "flightlog.toml"
    cfg.write_text(
        "[reliability]\ncost_per_failure = 10\n[reliability.workflows.w]\ncost_per_failure = 25\n"
    )
    proc = run_cli(
        "reliability",
        "--db",
        f"sqlite:///{db}",
        "--since",
        SINCE,
        "--until",
        UNTIL,
        "--config",
        str(cfg),
    )
    assert "5 failure(s) × 25.00 = 125.00" in proc.stdout
    cfg.write_text("[[slo]]\nworkflow = 'w'\ntarget = 99\n")
    proc = run_cli("reliability", "--db", f"sqlite:///{db}", "--config", str(cfg))
    assert proc.returncode == 1
    assert "line 3" in proc.stderr and "between 0 and 1" in proc.stderr


@pytest.fixture(scope="module")
def server(db: Path) -> Iterator[ServerProcess]:
    cfg = db.parent / "slo.toml"
    cfg.write_text('[[slo]]\nworkflow = "w"\ntarget = 0.9\nwindow = "400d"\nmin_runs = 5\n')
    srv = ServerProcess(db=db, port=free_port(), env={"FLIGHTLOG_CONFIG": str(cfg)}).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_rest_api_and_openapi(server: ServerProcess) -> None:
    since, until = known.DAY1, known.DAY1 + 3 * 86_400 * 10**9
    r = httpx.get(f"{server.url}/api/v1/reliability/w?since_ns={since}&until_ns={until}")
    assert r.status_code == 200
    (wf,) = r.json()["workflows"]
    assert wf["product_of_steps"]["value"] == pytest.approx(56 / 121)
    assert wf["failure_share"]["unattributed"] == 1
    r = httpx.get(f"{server.url}/api/v1/reliability?days=abc")
    assert r.status_code == 400 and "days" in r.json()["error"]["message"]
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/api/v1/reliability" in spec["paths"] and "/reliability" in spec["paths"]


def test_web_page_has_charts_and_no_script(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/reliability?workflow=w&days=3660")
    assert r.status_code == 200
    assert "script-src" not in r.headers["content-security-policy"]  # default-src 'none'
    body = r.text
    assert "<script" not in body
    assert body.count("<svg") >= 3
    assert "clean runs per day" in body and "success per step" in body
    assert "54.5%" in body
    assert "<h2>SLOs</h2>" in body and "not met" in body  # 6 of 11 against 90%
    assert httpx.get(f"{server.url}/reliability?days=0").status_code == 400


def test_a_window_that_ends_before_it_starts_is_a_usage_error(db: Path) -> None:
    """--since after --until (a date in the future, or the two swapped) printed "no runs in
    this window" as if the window were fine."""
    for window in (("--since", "2099-01-01"), ("--since", "1d", "--until", "2d")):
        p = run_cli("reliability", "--db", f"sqlite:///{db}", *window)
        assert p.returncode == 2 and "Traceback" not in p.stderr, (window, p.stderr)
        assert "at or after it ends" in p.stderr and "--until" in p.stderr, p.stderr
    ok = run_cli("reliability", "--db", f"sqlite:///{db}", "--since", SINCE, "--until", UNTIL)
    assert ok.returncode == 0, ok.stderr
