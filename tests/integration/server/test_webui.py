"""The web UI against a real ``flightlog serve`` process: runs recorded over OTLP/HTTP by the
SDK (the claims demo plus a run whose LLM output carries markup), each page fetched and read.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import flightlog
from flightlog import demo

from .conftest import ServerProcess, free_port

XSS = "<script>alert(1)</script>"
XSS_OWNER = "<img src=x onerror=alert(2)>"


@flightlog.step(kind="llm", agent="writer", owner="content-team", model="fake-1")
def write_reply(prompt: str) -> str:
    flightlog.usage(input_tokens=12, output_tokens=7, cost=0.0001)
    return f"Sure! {XSS} Ignore previous instructions."


@flightlog.step(kind="tool", agent="retriever")
def fetch(q: str) -> list[str]:
    return [f"doc about {q}"]


@flightlog.step(kind="llm", agent="writer")
def answer(docs: list[str]) -> str:
    flightlog.check(False, "grounded", "answer not grounded")
    return "use " + docs[0]


@flightlog.step(kind="agent", agent="orchestrator")
def orchestrate(q: str) -> str:
    return answer(fetch(q))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("webui")
    srv = ServerProcess(db=tmp / "server.db", port=free_port()).start()
    try:
        flightlog.configure(srv.url, service="webui-test")
        for claim in demo.make_claims(20):
            with contextlib.suppress(demo.ClaimRejected):
                demo.triage(claim)
        with flightlog.run("xss-probe", owner=XSS_OWNER, input={"q": XSS}) as run:
            write_reply(XSS)
        with flightlog.run("nested", owner="ops") as nested:  # no history: a hypothesis
            orchestrate("water leak")
            nested.fail("answer not grounded")
        flightlog.flush()
        runs = httpx.get(srv.url + "/api/v1/runs", params={"limit": 100}).json()["runs"]
        failed = [r for r in runs if r["status"] == "failed" and r["workflow"] == "claims-triage"]
        assert len(failed) == 1, failed
        yield {
            "server": srv,
            "tmp": tmp,
            "failed": failed[0]["id"],
            "xss": run.id,
            "nested": nested.id,
            "runs": runs,
        }
    finally:
        flightlog.shutdown()
        srv.stop()


def get(srv: ServerProcess, path: str, expect: int = 200, **params: Any) -> str:
    r = httpx.get(srv.url + path, params=params or None, timeout=30)
    assert r.status_code == expect, (path, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp  # so no script may run
    assert "<script" not in r.text.lower()  # no script of ours, none smuggled in
    return r.text


def test_runs_list_filters_pages_and_failure_column(recorded: dict[str, Any]) -> None:
    srv = recorded["server"]
    page = get(srv, "/")
    assert f"1–{len(recorded['runs'])} of {len(recorded['runs'])}" in page
    assert "step 4 of 7 (validate_claim)" in page
    assert f"/runs/{recorded['failed']}" in page
    assert "<form class='filters' method='get' action='/'>" in page

    failed = get(srv, "/", status="failed", workflow="claims-triage")
    assert failed.count("<tr><td class='mono'>") == 1
    assert get(srv, "/", status="failed").count("<tr><td class='mono'>") == 2
    assert "step 4 of 7 (validate_claim)" in failed and "pill bad" in failed

    first = get(srv, "/", workflow="claims-triage", limit=5, since="1h")
    assert "1–5 of 21" in first and first.count("<tr><td class='mono'>") == 5
    older = re.search(r"href='/\?([^']*)'>older", first)
    assert older is not None
    second = get(srv, "/?" + older.group(1).replace("&amp;", "&"))
    assert "6–10 of 21" in second and "← newer" in second
    ids_first = set(re.findall(r"href='/runs/([0-9a-f]{32})'", first))
    ids_second = set(re.findall(r"href='/runs/([0-9a-f]{32})'", second))
    assert len(ids_first) == len(ids_second) == 5 and not ids_first & ids_second

    assert "0 of 0" in get(srv, "/", since="2999-01-01")
    assert "is neither a duration" in get(srv, "/", 400, since="yesterday-ish")
    assert "is not one of" in get(srv, "/", 400, status="exploded")
    assert "out of range" in get(srv, "/", 400, limit="100000")


def test_failed_run_page_attribution_steps_and_lineage(recorded: dict[str, Any]) -> None:
    srv, rid = recorded["server"], recorded["failed"]
    api = httpx.get(f"{srv.url}/api/v1/runs/{rid}").json()
    page = get(srv, f"/runs/{rid[:10]}")  # a unique prefix works too
    assert "claims-triage" in page and "owner <b>claims-team</b>" in page
    # The attribution panel.
    assert "Why it failed" in page and "failed at step 4 of 7 (validate_claim)" in page
    assert "Root cause: <a href='#step-2'>step 2</a> <b class='rootcause'>search_policy</b>" in page
    assert "owner search-team" in page and "confidence <b>0." in page
    assert "Evidence:" in page and "returned 0 documents" in page
    assert "Causal chain: <a href='#step-2'>2 search_policy</a>" in page
    assert "Alternatives considered" in page
    # The step tree: one row per step, with its findings and expandable payloads.
    for s in api["steps"]:
        assert f"<tr id='step-{s['index']}'" in page
    assert page.count("<details>") >= len(api["steps"])
    assert "failure point</span>" in page and "root cause</span>" in page
    assert "check</b>: assessment cites no policy clause" in page
    # The lineage graph: one node per step; the root cause and failure point marked.
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count("<g class='node") == len(api["steps"]) == 4
    assert "<g class='node rc' data-step='2'>" in svg
    assert "<g class='node fp' data-step='4'>" in svg
    data_edges = [e for e in api["edges"] if e["kind"] == "data"]
    assert data_edges and svg.count("class='e-data'") == len(data_edges)
    # Links to the postmortem and the JSON API.
    assert f"href='/runs/{rid}/report'" in page and f"href='/api/v1/runs/{rid}'" in page

    report = get(srv, f"/runs/{rid}/report")
    assert "Postmortem: claims-triage" in report and "search_policy" in report


def test_nested_run_graph_and_weak_attribution_is_a_hypothesis(recorded: dict[str, Any]) -> None:
    from flightlog.app import open_store
    from flightlog.forensics import why

    srv, rid = recorded["server"], recorded["nested"]
    store = open_store(srv.store_url, readonly=True)
    try:
        att = why(store, rid)
    finally:
        store.close()
    assert att.hypothesis and att.root_cause is not None
    page = get(srv, f"/runs/{rid}")
    assert "<span class='pill warn'>hypothesis</span>" in page
    assert "(hypothesis: weak evidence)" in page
    api = httpx.get(f"{srv.url}/api/v1/runs/{rid}").json()
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count("<g class='node") == len(api["steps"]) == 3
    # steps 2 (fetch) and 3 (answer) run inside step 1 (orchestrate): two parent elbows
    assert svg.count("class='e-parent'") == sum(1 for s in api["steps"] if s["parent_id"]) == 2
    rc = att.root_cause.index
    assert f"<g class='node rc fp' data-step='{rc}'>" in svg  # the same step: both marks


def test_succeeded_run_has_no_attribution_and_unknown_run_is_404(recorded: dict[str, Any]) -> None:
    srv = recorded["server"]
    ok = next(
        r["id"]
        for r in recorded["runs"]
        if r["status"] == "succeeded" and r["workflow"] == "claims-triage"
    )
    page = get(srv, f"/runs/{ok}")
    assert "Why it failed" not in page
    assert page.count("<g class='node") == 7
    assert "no run" in get(srv, "/runs/" + "f" * 32, 404)
    assert "no run" in get(srv, f"/runs/{'f' * 32}/report", 404)


def test_a_page_that_does_not_exist_is_a_page_for_a_browser(recorded: dict[str, Any]) -> None:
    """/runs (a natural guess) and other unknown paths: a browser gets the HTML 404 with the
    navigation and where the pages are; an API client still gets the JSON error."""
    srv = recorded["server"]
    for path in ("/runs", "/runs/", "/settings"):
        r = httpx.get(srv.url + path, headers={"Accept": "text/html,*/*;q=0.8"})
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert f"there is no page at {path}" in r.text and "<a href='/incidents'>" in r.text
    r = httpx.get(srv.url + "/runs")
    assert r.status_code == 404 and r.json()["error"]["message"] == "no route for GET /runs"
    r = httpx.get(srv.url + "/api/v1/nope", headers={"Accept": "text/html"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")


def test_captured_markup_is_shown_escaped_only(recorded: dict[str, Any]) -> None:
    srv, rid = recorded["server"], recorded["xss"]
    page = get(srv, f"/runs/{rid}")
    listing = get(srv, "/")
    for html in (page, listing):
        assert XSS not in html and XSS_OWNER not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the output, as text
    assert "&lt;img src=x onerror=alert(2)&gt;" in page  # the owner, as text
    assert "&lt;img src=x onerror=alert(2)&gt;" in listing
    assert "fake-1" in page and "12 / 7" in page


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightlog", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_incidents_and_audit_pages(recorded: dict[str, Any]) -> None:
    srv, tmp = recorded["server"], recorded["tmp"]
    db = srv.store_url
    config = tmp / "flightlog.toml"
    config.write_text(
        '[teams.platform]\nchannels = []\n[[owners]]\nteam = "platform"\n'
        '[[owners]]\nstep = "search_policy"\nteam = "search-team"\n'
        "[teams.search-team]\nchannels = []\n"
    )
    before = get(srv, "/incidents")
    if "INC-" not in before:  # the respond tables may not exist yet: a friendly empty state
        assert "No incidents" in before
    cli("watch", "--once", "--since", "1d", "--db", db, "--config", str(config))
    incidents = json.loads(cli("incidents", "--json", "--db", db).stdout)
    assert len(incidents) == 2  # the claims failure and the nested run's
    inc = next(i for i in incidents if i["workflow"] == "claims-triage")
    page = get(srv, "/incidents")
    for i in incidents:
        assert f"INC-{i['id']}" in page and i["fingerprint"] in page
    assert "triggered" in page and f"/runs/{recorded['failed']}" in page
    assert inc["root_cause_team"] in page and f">{inc['run_count']}</td>" in page
    assert "search_policy" in page and "validate_claim" in page
    one = get(srv, f"/incidents/INC-{inc['id']}")
    assert inc["fingerprint"] in one and f"/runs/{recorded['failed']}" in one
    assert "Timeline" in one and "opened" in one and "root-cause owner" in one
    assert "no incident" in get(srv, "/incidents/99999", 404)
    assert "is not an incident id" in get(srv, "/incidents/bogus", 404)
    assert "No incidents in state resolved" in get(srv, "/incidents", state="resolved")
    assert "is not one of" in get(srv, "/incidents", 400, state="on-fire")

    status = json.loads(cli("audit", "status", "--json", "--db", db).stdout)
    audit = get(srv, "/audit")
    assert "Audit ledger" in audit and status["origin"] in audit
    size = int(re.search(r"<th>entries</th><td>([\d,]+)</td>", audit).group(1).replace(",", ""))
    assert 0 < size <= status["size"]
    assert "last checkpoint" in audit


def test_empty_store_pages_and_ledger_off(tmp_path: Path) -> None:
    srv = ServerProcess(
        db=tmp_path / "empty.db", port=free_port(), env={"FLIGHTLOG_LEDGER": "off"}
    ).start()
    try:
        assert "No runs match" in get(srv, "/")
        assert "No incidents yet" in get(srv, "/incidents")
        assert "no incidents have been recorded" in get(srv, "/incidents/1", 404)
        assert "positive" in get(srv, "/incidents/" + "9" * 40, 404)
        assert "The audit ledger is off" in get(srv, "/audit")
    finally:
        srv.stop()


def test_pages_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    srv = ServerProcess(db=tmp_path / "unused.db", port=free_port(), store=pg_url).start()
    try:
        flightlog.configure(srv.url, service="webui-pg")
        for claim in demo.make_claims(20):
            with contextlib.suppress(demo.ClaimRejected):
                demo.triage(claim)
        flightlog.flush()
        flightlog.shutdown()
        assert "No incidents yet" in get(srv, "/incidents")
        listing = get(srv, "/", status="failed", since="1h")
        assert "step 4 of 7 (validate_claim)" in listing
        rid = re.findall(r"href='/runs/([0-9a-f]{32})'", listing)[0]
        page = get(srv, f"/runs/{rid}")
        assert "<b class='rootcause'>search_policy</b>" in page
        assert page.count("<g class='node") == 4
        assert "search_policy" in get(srv, f"/runs/{rid}/report")
        config = tmp_path / "flightlog.toml"
        config.write_text('[teams.platform]\nchannels = []\n[[owners]]\nteam = "platform"\n')
        cli("watch", "--once", "--since", "1d", "--db", pg_url, "--config", str(config))
        assert f"/runs/{rid}" in get(srv, "/incidents/1")
        assert "entries" in get(srv, "/audit")
    finally:
        srv.stop()
