"""Owners of ingested runs: a recorded framework trace (no owners in it) gets the owner the
``[[owners]]`` rules name in ``why``, ``show``, the web UI, ``report`` and the alert, by
the same resolution; a ``tool =`` rule decides the postmortem as it decides the page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flightlog.app import open_store
from flightlog.otel.decode import decode
from flightlog.server.ingest import Ingestor

DATA = Path(__file__).resolve().parents[2] / "data" / "otlp" / "openllmetry"
CONFIG = """
[teams.platform]
channels = []

[teams.claims-team]
channels = []

[teams.policy-team]
channels = []

[[owners]]
team = "platform"

[[owners]]
workflow = "claims_agent"
team = "claims-team"

[[owners]]
tool = "lookup_*"
team = "policy-team"
"""


@pytest.fixture
def ingested(tmp_path: Path) -> tuple[str, str, Path]:
    db = f"sqlite:///{tmp_path / 'owners.db'}"
    store = open_store(db)
    ingestor = Ingestor(store)
    try:
        for name in ("ok_1", "ok_2", "ok_3", "empty"):
            ingestor.submit(decode((DATA / f"{name}.json").read_bytes(), "application/json"))
    finally:
        ingestor.close()
    [failed] = [r for r in store.list_runs() if r.status == "failed"]
    config = tmp_path / "flightlog.toml"
    config.write_text(CONFIG)
    return db, failed.id, config


def _cli(*args: str, config: Path) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "flightlog", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FLIGHTLOG_CONFIG": str(config)},
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_why_show_and_report_name_the_tool_rules_owner(ingested: tuple[str, str, Path]) -> None:
    db, run_id, config = ingested
    why = json.loads(_cli("why", run_id, "--db", db, "--json", config=config))
    assert why["root_cause"]["name"] == "lookup_policy"
    assert why["root_cause"]["owner"] == "policy-team"  # the tool rule, not the workflow's
    assert why["failure_point"]["owner"] == "claims-team"  # compute_payout: workflow rule
    assert "owner policy-team" in why["summary"]
    shown = json.loads(_cli("show", run_id, "--db", db, "--json", config=config))
    owners = {s["name"]: s["owner"] for s in shown["steps"]}
    assert owners["lookup_policy"] == "policy-team" and owners["compute_payout"] == "claims-team"
    assert "owner of that step: claims-team" in _cli("show", run_id, "--db", db, config=config)
    report = _cli("report", run_id, "--db", db, config=config)
    assert "policy-team" in report


def test_without_rules_nothing_is_invented(ingested: tuple[str, str, Path]) -> None:
    db, run_id, config = ingested
    config.write_text("")
    why = json.loads(_cli("why", run_id, "--db", db, "--json", config=config))
    assert why["root_cause"]["owner"] is None
