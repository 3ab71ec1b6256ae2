"""Checkpoints: signed every few seconds while writing (and when writes stop), published to a
witness outside the store (a directory, or a git repository), the unsigned tail reported, and
rollbacks or truncations of signed entries caught against the witness. The signing key is
created in the user's configuration directory, made if missing (PostgreSQL too)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from flightlog.app import open_store
from flightlog.ledger import attach, rfc9162
from flightlog.ledger.verify import verify
from tests.integration.ledger._ledger_helpers import rid, run_batches


def _write_runs(url: str, *numbers: int) -> None:
    store = open_store(url)
    try:
        for n in numbers:
            for b in run_batches(rid(n)):
                store.write(b)
    finally:
        store.close()


def _wait_signed(url: str, deadline_s: float = 30) -> int:
    """Wait (polling, no timing assertion) until a checkpoint covers the whole log."""
    store = open_store(url)
    ledger = attach(store)
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            with store.read() as tx:
                size, _root = ledger.head(tx)
                notes = ledger.checkpoint_notes(tx)
            if notes and notes[-1][0] == size:
                return size
            time.sleep(0.05)
    finally:
        store.close()
    raise AssertionError("no checkpoint covered the log's tail")


def test_verify_reports_the_unsigned_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS", "3600")
    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = open_store(url)
    ledger = attach(store)
    try:
        for b in run_batches(rid(1)):
            store.write(b)
        ledger.checkpoint()
        for b in run_batches(rid(2)):
            store.write(b)
        report = verify(ledger)
        assert report.ok and report.unsigned == 9 and report.signed == 9
        assert "9 entries (#9..#17) are after the last signed checkpoint" in report.tail()
        ledger.checkpoint()
        assert verify(ledger).unsigned == 0
    finally:
        store.close()


def test_the_tail_is_signed_when_writes_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS", "0.2")
    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = open_store(url)
    try:
        for b in run_batches(rid(1)):
            store.write(b)
        assert _wait_signed(url) == 9  # signed by the writer's own timer, no further write
    finally:
        store.close()


def test_truncating_signed_entries_is_caught_by_the_witness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The careful attacker: deletes the last run's records, entries, interior hashes and
    checkpoints, and recomputes the tree head. The published checkpoint still names them."""
    monkeypatch.setenv("FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS", "0.2")
    monkeypatch.setenv("FLIGHTLOG_LEDGER_WITNESS", str(tmp_path / "witness"))
    db = tmp_path / "f.db"
    url = f"sqlite:///{db}"
    _write_runs(url, 1, 2)
    size = _wait_signed(url)
    conn = sqlite3.connect(db)
    keep = size - 9
    for table in ("runs", "steps", "edges", "findings"):
        col = "id" if table == "runs" else "run_id"
        conn.execute(f"DELETE FROM {table} WHERE {col} = ?", (rid(2),))
    conn.execute("DELETE FROM ledger_entries WHERE seq >= ?", (keep,))
    conn.execute("DELETE FROM ledger_nodes")
    conn.execute("DELETE FROM ledger_checkpoints WHERE size > ?", (keep,))
    leaves = [bytes(r[0]) for r in conn.execute("SELECT leaf FROM ledger_entries ORDER BY seq")]
    conn.execute(
        "UPDATE ledger_state SET size = ?, root = ?", (keep, rfc9162.root_from_leaves(leaves))
    )
    conn.commit()
    conn.close()
    store = open_store(url)
    try:
        report = verify(attach(store))
    finally:
        store.close()
    assert not report.ok
    assert any(
        p.code == "checkpoint.beyond" and "witnessed" in p.message for p in report.problems
    ), report.summary()


@pytest.mark.parametrize("kind", ["directory", "git"])
def test_a_rollback_is_caught_by_the_published_witness(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    witness = tmp_path / "witness"
    if kind == "git":
        subprocess.run(["git", "init", "-q", str(witness)], check=True)
    monkeypatch.setenv("FLIGHTLOG_LEDGER_WITNESS", str(witness))
    monkeypatch.setenv("FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS", "3600")
    db = tmp_path / "f.db"
    url = f"sqlite:///{db}"
    _write_runs(url, 1)
    store = open_store(url)
    attach(store).checkpoint()
    store.close()
    old = tmp_path / "old.db"
    shutil.copy(db, old)  # the attacker's snapshot
    _write_runs(url, 2)
    store = open_store(url)
    attach(store).checkpoint()
    assert verify(attach(store)).ok
    store.close()
    published = list(witness.glob("*.checkpoints"))
    assert len(published) == 1 and published[0].read_text().count("\n\n— ") == 2
    if kind == "git":
        log = subprocess.run(
            ["git", "-C", str(witness), "log", "--oneline"], capture_output=True, text=True
        )
        assert log.stdout.count("checkpoint ") == 2
    shutil.copy(old, db)  # roll the store back
    store = open_store(url)
    try:
        report = verify(attach(store))
    finally:
        store.close()
    assert not report.ok and report.first is not None
    assert report.first.code == "checkpoint.beyond" and "older copy" in report.first.message


def test_postgresql_store_creates_its_key_directory(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh machine: no configuration directory yet; nothing set."""
    config = tmp_path / "fresh" / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("FLIGHTLOG_LEDGER_KEY")
    store = open_store(pg_url)
    try:
        for b in run_batches(rid(1)):
            store.write(b)
        ledger = attach(store)
        ledger.checkpoint()
        key = ledger.key_path
        assert key is not None and key.parent == config / "flightlog" / "keys"
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        assert oct(key.parent.stat().st_mode & 0o777) == "0o700"
        report = verify(ledger)
        assert report.ok and report.witnessed == 1, report.summary()
    finally:
        store.close()
