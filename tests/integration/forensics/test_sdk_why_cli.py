"""End to end through the SDK: record runs, the run-end hook detects and attributes, and
``flightlog.why`` / ``flightlog why`` / ``flightlog detect`` explain the failed run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flightlog


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'sdk.db'}"
    flightlog.configure(url)
    yield url
    flightlog.shutdown()


@flightlog.step(kind="tool", agent="retriever", owner="search-team")
def search_policy(query: str, broken: bool) -> list[str]:
    return [] if broken else [f"{query} policy section {i}" for i in range(3 + len(query) % 3)]


@flightlog.step(kind="llm", agent="planner", owner="claims-team")
def assess(docs: list[str]) -> dict[str, Any]:
    return {"covered": bool(docs), "basis": docs[:1]}


@flightlog.step(kind="guardrail", agent="validator", owner="claims-team")
def validate(assessment: dict[str, Any]) -> bool:
    ok = flightlog.check(assessment["covered"], "covered", "claim is not covered by any policy")
    if not ok:
        raise ValueError("claim rejected: no supporting policy")
    return True


def one(text: str, broken: bool = False) -> str:
    try:
        with flightlog.run("claims", owner="claims-team", steps=3) as run:
            validate(assess(search_policy(text, broken)))
    except ValueError:
        pass
    return run.id


def test_hook_and_why_and_cli(db: str) -> None:
    for i in range(5):
        one(f"claim {i}")
    rid = one("flooded basement", broken=True)
    att = flightlog.why(rid)
    assert att.failed and att.failure_point is not None and att.root_cause is not None
    assert (att.failure_point.index, att.failure_point.name) == (3, "validate")
    assert (att.root_cause.index, att.root_cause.name, att.root_cause.agent) == (
        1,
        "search_policy",
        "retriever",
    )
    assert att.summary.startswith(
        "failed at step 3 of 3 (validate); root cause step 1 search_policy "
        "(agent retriever, owner search-team): returned 0 items where it usually returns"
    )
    # The run-end hook stored detector findings and the attribution.
    store = flightlog.open_store(db)
    try:
        detectors = {f.detector for f in store.get_findings(rid)}
        assert {"check", "errors", "empty_output"} <= detectors
        from flightlog.forensics.ledger import stored_attribution

        stored = stored_attribution(store, rid)
        assert stored is not None and stored.root_cause == att.root_cause
    finally:
        store.close()

    out = subprocess.run(
        [sys.executable, "-m", "flightlog", "why", rid[:10], "--db", db, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["root_cause"]["name"] == "search_policy" and data["of_steps"] == 3
    assert data == {**att.to_dict(), "confidence": data["confidence"]}
    text = subprocess.run(
        [sys.executable, "-m", "flightlog", "why", rid, "--db", db],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "root cause:    step 1 search_policy (agent retriever, owner search-team)" in text
    assert "chain:         1 search_policy -> 2 assess -> 3 validate" in text
    det = subprocess.run(
        [sys.executable, "-m", "flightlog", "detect", rid, "--db", db, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert {"empty_output", "check"} <= {f["detector"] for f in json.loads(det.stdout)}


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    flightlog.open_store(db).close()  # an empty store: reading never creates one
    for cmd in (["why", "abc"], ["detect", "abc"]):
        p = subprocess.run(
            [sys.executable, "-m", "flightlog", *cmd, "--db", db], capture_output=True, text=True
        )
        assert p.returncode == 1
        assert p.stderr.strip().startswith("error: no run with id 'abc'")
        assert "Traceback" not in p.stderr
