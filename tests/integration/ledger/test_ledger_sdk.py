"""End to end through the SDK (``flightlog.run`` / ``flightlog.step``), and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

import flightlog
from flightlog.ledger import attach
from flightlog.ledger.bundle import export, verify_bundle
from flightlog.ledger.proof import prove, verify_tlog_proof
from flightlog.ledger.redact import redact_run
from flightlog.ledger.verify import verify
from tests.integration.ledger._ledger_helpers import rid, run_batches


def test_sdk_runs_are_logged_and_verify(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sdk.db'}"
    flightlog.configure(url)
    try:

        @flightlog.step(kind="tool", agent="retriever", owner="search-team")
        def search(query: str, user_email: str) -> list[str]:
            return [f"doc about {query}"]

        @flightlog.step(kind="guardrail", agent="validator")
        def validate(docs: list[str]) -> bool:
            flightlog.check(bool(docs), "has_docs", "retrieval returned no documents")
            return True

        with flightlog.run("claims", owner="claims-team", input={"claim": "pipe burst"}) as run:
            validate(search("water damage", user_email="ana@example.com"))
        run_id = run.id
        flightlog.flush()
    finally:
        flightlog.shutdown()
    store = flightlog.open_store(url)
    ledger = attach(store)
    report = verify(ledger)
    assert report.ok, report.summary()
    with store.read() as tx:
        kinds = [k for (k,) in tx.fetchall("SELECT kind FROM ledger_entries ORDER BY seq")]
    # (a short run reaches the store in one batch: the writer sends only its end record)
    assert kinds.count("step") == 2 and kinds.count("run.end") == 1
    p = prove(ledger, run_id)
    verify_tlog_proof(p.to_text(), ledger.verifier())
    bundle = tmp_path / "b.json"
    export(ledger, bundle, run_id=run_id)
    assert verify_bundle(bundle).runs == [run_id]
    redact_run(ledger, run_id)
    assert verify(ledger).ok
    store.close()
    raw = (tmp_path / "sdk.db").read_bytes()
    assert b"pipe burst" not in raw and b"ana@example.com" not in raw


def test_ledger_on_postgresql(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTLOG_LEDGER_KEY", str(tmp_path / "pg.key"))
    monkeypatch.setenv("FLIGHTLOG_LEDGER_WITNESS", str(tmp_path / "pg.checkpoints"))
    store = flightlog.open_store(pg_url)
    for n in range(2):
        for b in run_batches(rid(n + 1), secret=f"pgperson{n}"):
            store.write(b)
    ledger = attach(store)
    cp = ledger.checkpoint()
    assert cp.size == 18
    report = verify(ledger)
    assert report.ok and report.witnessed == 1, report.summary()
    with store.transaction() as tx:
        tx.execute(
            "UPDATE steps SET name = 'forged' WHERE run_id = ? AND id = ?", (rid(2), f"{1:016x}")
        )
    bad = verify(ledger)
    assert bad.first is not None and bad.first.code == "record.changed" and bad.first.index == 10
    with store.transaction() as tx:
        tx.execute(
            "UPDATE steps SET name = 'step1' WHERE run_id = ? AND id = ?", (rid(2), f"{1:016x}")
        )
    redact_run(ledger, rid(1))
    assert verify(ledger).ok
    p = prove(ledger, f"{rid(2)}/{2:016x}")
    verify_tlog_proof(p.to_text(), ledger.verifier())
    store.close()


def test_demo_store_verifies_and_its_bundle_verifies(tmp_path: Path) -> None:
    from flightlog import demo

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    try:
        result = demo.run_demo(url, n_ok=4, home=tmp_path / "demo")
        lines: list[str] = []
        for part in demo.SECTIONS:
            part(result, lines.append)
    finally:
        flightlog.shutdown()
    text = "\n".join(lines)
    assert "flightlog audit verify" in text and ": ok: " in text
    bundle = Path(result.notes["audit_bundle"])
    rep = verify_bundle(bundle, attach(result.store).verifier().encode())
    assert rep.runs == [result.failed_run_id] and rep.key_pinned
    result.store.close()
