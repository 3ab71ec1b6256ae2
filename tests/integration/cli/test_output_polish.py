"""Output a new user reads: counts of what was cut, stable lineage order, where a run that
was failed after its steps failed, steps never reached, no float noise in JSON, the
incident page's acknowledgement, prune's message."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

import flightlog
from tests.conftest import run_cli
from tests.integration.server.conftest import ServerProcess, free_port


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")}


def test_a_run_failed_after_its_steps_failed_after_the_last_of_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    flightlog.configure(url)
    try:

        @flightlog.step(kind="tool")
        def look_up(q: str) -> list[str]:
            flightlog.check(False, "has_docs", "no documents")  # a check fails in step 1
            return []

        @flightlog.step(kind="llm")
        def answer(q: str, docs: list[str]) -> str:
            return "a confident answer without sources"

        with flightlog.run("two-steps", steps=2) as run:
            answer("q", look_up("q"))
            run.fail("validator rejected the answer")  # both steps ended normally
        assert flightlog.flush()
    finally:
        flightlog.shutdown()
    shown = run_cli("show", run.id, "--db", url, env=_env(), check=True).stdout
    assert "failed at step 2 of 2 (answer): validator rejected the answer" in shown
    why = json.loads(run_cli("why", run.id, "--db", url, "--json", env=_env(), check=True).stdout)
    assert why["failure_point"]["index"] == 2 and why["of_steps"] == 2
    assert any("after this step, the last to run, ended normally" in e for e in why["evidence"])
    assert "failed at step 1" not in json.dumps(why)


def test_demo_output_polish(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    run_cli("demo", "--runs", "5", "--dir", str(home), env=_env(), check=True)
    db = f"sqlite:///{home / 'flightlog.db'}"
    rid = run_cli("runs", "--status", "failed", "-q", "--db", db, env=_env(), check=True)
    rid_s = rid.stdout.strip()
    # runs: how many were cut, and how to see them
    cut = run_cli("runs", "-n", "2", "--db", db, env=_env(), check=True).stdout
    assert "showing the newest 2 of 6 runs; -n 6 shows all" in cut
    # show: steps never reached, lineage edges ordered by source then target step
    shown = run_cli("show", rid_s, "--db", db, env=_env(), check=True).stdout
    assert "5-7  not reached: price_claim, draft_response, notify_customer" in shown
    edges = shown.split("lineage:\n", 1)[1].strip().splitlines()
    keys = [tuple(int(x.split()[0]) for x in line.strip().split(" -> ")) for line in edges]
    assert keys == sorted(keys) and len(keys) == 4
    # JSON: no float noise anywhere
    for args in (("why", rid_s, "--json"), ("show", rid_s, "--json"), ("runs", "--json")):
        out = run_cli(*args, "--db", db, env=_env(), check=True).stdout
        assert "0000000" not in out and "9999999" not in out, args
    # the markdown postmortem reads as text
    md = run_cli("report", rid_s, "--format", "md", "--db", db, env=_env(), check=True).stdout
    assert "&gt;" not in md and "\\[" not in md and "\\_" not in md
    assert "2 search_policy -> 3 assess_coverage -> 4 validate_claim" in md
    # the incident page says it was acknowledged, and by whom
    run_cli("incident", "ack", "1", "--by", "dana", "--db", db, cwd=home, env=_env(), check=True)
    srv = ServerProcess(db=home / "flightlog.db", port=free_port())
    srv.start()
    try:
        page = httpx.get(f"{srv.url}/incidents/1").text
        run_page = httpx.get(f"{srv.url}/runs/{rid_s}").text
    finally:
        srv.stop()
    assert "acknowledged by dana at" in page
    assert "not reached: the run failed before this step" in run_page
    assert run_page.count("class='unreached'") == 3
    # prune with nothing old enough says so
    pruned = run_cli("audit", "prune", "--before", "400d", "--db", db, env=_env())
    assert "#-1" not in pruned.stdout + pruned.stderr
