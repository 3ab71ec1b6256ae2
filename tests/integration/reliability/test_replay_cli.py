"""``flightlog replay`` and ``flightlog why --confirm`` on the claims demo's failed run: the
replay with a corrected step succeeds and is stored linked to its original, left out of
reliability figures and alerting; the counterfactual confirmation is recorded and audited."""

from __future__ import annotations

import json

import pytest

from flightlog.app import open_store
from tests.conftest import run_cli

ENTRY = "flightlog.demo:triage"
CLAUSE = '[{"id": "HS-4.1", "text": "Escape of water from a fixed pipe is covered."}]'


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    db = f"sqlite:///{tmp_path_factory.mktemp('replay') / 'demo.db'}"
    assert run_cli("demo", "--db", db).returncode == 0
    runs = json.loads(run_cli("runs", "--db", db, "--status", "failed", "--json").stdout)
    rows = runs["runs"] if isinstance(runs, dict) else runs
    return db, rows[0]["id"]


def test_replay_as_recorded_then_corrected(demo: tuple[str, str]) -> None:
    db, rid = demo
    same = run_cli("replay", rid[:10], "--entry", ENTRY, "--db", db, "--no-store")
    assert same.returncode == 0, same.stderr
    assert "(was failed): failed" in same.stdout and "the failure remains" in same.stdout
    fixed = run_cli(
        "replay",
        rid,
        "--entry",
        ENTRY,
        "--db",
        db,
        "--override",
        f"search_policy={CLAUSE}",
        "--json",
    )
    assert fixed.returncode == 0, fixed.stderr
    data = json.loads(fixed.stdout)
    assert data["status"] == "succeeded" and data["original_status"] == "failed"
    sources = {s["name"]: s["source"] for s in data["steps"]}
    assert sources["search_policy"] == "override" and sources["intake_claim"] == "recorded"
    store = open_store(db)
    try:
        new = store.get_run(data["replay_run_id"])
        assert new is not None and new.status == "succeeded" and new.source == "replay"
        assert new.attributes["flightlog.replay_of"] == rid
    finally:
        store.close()
    rel = json.loads(run_cli("reliability", "claims-triage", "--db", db, "--json").stdout)
    assert rel["workflows"][0]["runs"] == {"failed": 1, "succeeded": 20}  # replays left out
    bad = run_cli("replay", rid, "--entry", ENTRY, "--db", db, "--override", "nonsense")
    assert bad.returncode == 2 and "STEP=VALUE" in bad.stderr
    # A misspelt step replayed the run unchanged ("the failure remains"); a step the
    # failed run never reached (price_claim: of the workflow's other runs) is fine.
    typo = run_cli("replay", rid, "--entry", ENTRY, "--db", db, "--override", "serch_policy=[]")
    assert typo.returncode == 1 and "no step named 'serch_policy'" in typo.stderr
    assert "2 search_policy" in typo.stderr and "the failure remains" not in typo.stdout
    later = run_cli(
        "replay", rid, "--entry", ENTRY, "--db", db, "--override", "price_claim=live", "--no-store"
    )
    assert later.returncode == 0, later.stderr


def test_why_confirm_records_the_decisive_step(demo: tuple[str, str]) -> None:
    db, rid = demo
    assert run_cli("why", rid, "--db", db, "--confirm").returncode == 2  # needs --entry
    alone = run_cli("why", rid, "--db", db, "--entry", ENTRY)  # was ignored without a word
    assert alone.returncode == 2 and "--entry is used only with --confirm" in alone.stderr
    out = run_cli("why", rid, "--db", db, "--confirm", "--entry", ENTRY)
    assert out.returncode == 0, out.stderr
    assert "correcting step 2 search_policy turns the failure into success" in out.stdout
    assert "confirms the root cause" in out.stdout
    data = json.loads(run_cli("why", rid, "--db", db, "--json").stdout)
    assert data["counterfactual"]["confirmed"] is True
    assert data["counterfactual"]["decisive"]["step"] == "search_policy"
    store = open_store(db)
    try:
        with store.read() as tx:
            kinds = {r[0] for r in tx.fetchall("SELECT kind FROM ledger_entries")}
        assert "attribution.confirmed" in kinds
    finally:
        store.close()
