"""Redaction keeps every proof valid and removes the values from the database file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flightlog.app import open_store
from flightlog.errors import LedgerError
from flightlog.ledger import attach, rfc9162
from flightlog.ledger.bundle import export, verify_bundle
from flightlog.ledger.proof import prove, verify_tlog_proof
from flightlog.ledger.redact import redact_run
from flightlog.ledger.retention import prune
from flightlog.ledger.verify import verify
from tests.integration.ledger._ledger_helpers import rid


def _raw(db: Path) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-journal"):
        p = Path(str(db) + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


def test_redaction_keeps_proofs_and_removes_bytes(filled: Path, tmp_path: Path) -> None:
    secret = b"person2"
    assert secret in _raw(filled)
    store = open_store(f"sqlite:///{filled}")
    ledger = attach(store)
    before = prove(ledger, rid(2))
    bundle_before = tmp_path / "before.json"
    export(ledger, bundle_before, run_id=rid(2))
    assert verify_bundle(bundle_before).opened > 0

    result = redact_run(ledger, rid(2)[:12], reason="GDPR Art. 17 request")
    assert result.entries == 10 and result.values > 0 and result.payloads_deleted == 5

    report = verify(ledger)
    assert report.ok, report.summary()
    assert report.redacted == 10
    # The old proof still verifies, and the old checkpoint is consistent with the new one.
    verify_tlog_proof(before.to_text(), ledger.verifier())
    after = ledger.checkpoint()
    with store.read() as tx:
        proof = ledger.consistency_proof(tx, before.checkpoint.size, after.size)
    rfc9162.verify_consistency(
        before.checkpoint.size, after.size, before.checkpoint.root, after.root, proof
    )
    # A bundle exported after redaction verifies and says what was redacted.
    bundle_after = tmp_path / "after.json"
    export(ledger, bundle_after, run_id=rid(2))
    rep = verify_bundle(bundle_after)
    # The one value still opened is the redaction's own reason (free text, committed too).
    assert rep.opened == 1 and rep.redacted > 0 and rep.payloads == 0
    assert secret not in bundle_after.read_bytes()
    # Other runs keep their values.
    assert verify_bundle(export_path(ledger, tmp_path, rid(1))).opened > 0
    store.close()

    raw = _raw(filled)
    assert secret not in raw, "the redacted value is still in the database file or its WAL"
    assert b"person1" in raw and b"person3" in raw
    conn = sqlite3.connect(filled)
    kinds = [
        k
        for (k,) in conn.execute(
            "SELECT kind FROM ledger_entries WHERE kind <> 'run.index' ORDER BY seq DESC LIMIT 1"
        )
    ]
    assert kinds == ["redaction"]


def export_path(ledger: object, tmp_path: Path, run_id: str) -> Path:
    out = tmp_path / f"{run_id}.json"
    export(ledger, out, run_id=run_id)
    return out


def test_missing_opening_without_redaction_is_tampering(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    conn.execute("UPDATE ledger_entries SET openings = NULL WHERE seq = 1")
    conn.commit()
    store = open_store(f"sqlite:///{filled}")
    r = verify(attach(store))
    store.close()
    assert (
        r.first is not None and r.first.index == 1 and "no redaction covers it" in r.first.message
    )


def test_retention_refuses_inside_the_window_and_prunes_outside(filled: Path) -> None:
    import time

    store = open_store(f"sqlite:///{filled}")
    ledger = attach(store)
    with pytest.raises(LedgerError, match="retention window"):
        prune(ledger, time.time_ns())
    with pytest.raises(LedgerError, match="183-day"):
        prune(ledger, time.time_ns() - 182 * 86_400 * 10**9)
    # A year from now, today's runs are outside the window.
    later = time.time_ns() + 400 * 86_400 * 10**9
    with store.read() as tx:
        (t1,) = tx.fetchone("SELECT started_ns FROM runs WHERE id = ?", (rid(2),))
    pruned = prune(ledger, t1 + 1, now_ns=later)
    assert pruned.runs >= 1 and pruned.entries >= 8
    report = verify(ledger)
    # entries of remaining runs still prove
    p = prove(ledger, rid(3))
    verify_tlog_proof(p.to_text(), ledger.verifier())
    store.close()
    assert report.ok, report.summary()
