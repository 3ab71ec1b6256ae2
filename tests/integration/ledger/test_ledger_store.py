"""The ledger on a real SQLite store: appends, verification, every tamper case."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from flightlog.app import open_store
from flightlog.errors import LedgerError
from flightlog.ledger import attach, rfc9162
from flightlog.ledger.note import Signer
from flightlog.ledger.proof import prove, verify_tlog_proof
from flightlog.ledger.verify import VerifyReport, verify
from flightlog.model import Batch, Run, Step
from tests.integration.ledger._ledger_helpers import rid, run_batches


def _verify(db: Path, **kw: object) -> VerifyReport:
    store = open_store(f"sqlite:///{db}")
    try:
        return verify(attach(store), **kw)  # type: ignore[arg-type]
    finally:
        store.close()


def _sql(db: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_every_record_becomes_a_leaf_and_verifies(filled: Path) -> None:
    report = _verify(filled)
    assert report.ok, report.summary()
    # per run: run.start, 4 steps, 1 edge, 1 finding, run.end, run.index
    assert report.entries == 3 * 9
    assert report.records == 3 * (1 + 4 + 1 + 1)
    assert report.checkpoints == 1 and report.witnessed == 1
    conn = sqlite3.connect(filled)
    kinds = [k for (k,) in conn.execute("SELECT kind FROM ledger_entries ORDER BY seq")]
    assert kinds[:9] == [
        "run.start",
        "step",
        "step",
        "step",
        "step",
        "edge",
        "finding",
        "run.end",
        "run.index",
    ]


def test_ledger_off_by_env(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTLOG_LEDGER", "off")
    store = open_store(f"sqlite:///{db}")
    for b in run_batches(rid(1)):
        store.write(b)
    store.close()
    conn = sqlite3.connect(db)
    assert conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'ledger_entries'"
    ).fetchone() == (0,)


def test_redelivery_is_idempotent_and_still_verifies(db: Path) -> None:
    store = open_store(f"sqlite:///{db}")
    batches = run_batches(rid(1), secret="person1")
    for b in batches:
        store.write(b)
    for b in batches:
        assert store.write(b) == []  # the same records again, as a spool would redeliver
    report = verify(attach(store))
    store.close()
    assert report.ok, report.summary()
    assert report.entries == 9  # nothing changed, nothing appended


def test_no_record_without_leaf_when_the_transaction_fails(db: Path) -> None:
    store = open_store(f"sqlite:///{db}")
    store.write(run_batches(rid(1))[0])

    def broken(tx: object, batch: object) -> None:
        raise RuntimeError("disk on fire")

    store.add_write_hook(broken)
    with pytest.raises(RuntimeError):
        store.write(run_batches(rid(1))[1])
    store._write_hooks.remove(broken)  # type: ignore[attr-defined]
    store.write(run_batches(rid(2))[0])
    report = verify(attach(store))
    store.close()
    assert report.ok, report.summary()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM steps").fetchone() == (0,)
    assert report.entries == 2


def test_audit_records_from_other_capabilities(db: Path) -> None:
    store = open_store(f"sqlite:///{db}")
    ledger = attach(store)
    with store.transaction() as tx:
        store.audit(tx, "incident.transition", {"id": "inc-1", "to": "acknowledged", "by": "ana"})
    with pytest.raises(RuntimeError), store.transaction() as tx:
        store.audit(tx, "alert.sent", {"id": "al-1", "api_key": "sk-123"})
        raise RuntimeError("rolled back")
    with store.transaction() as tx:
        store.audit(tx, "alert.sent", {"id": "al-2", "api_key": "sk-secret-456", "to": "pager"})
    report = verify(ledger)
    p = prove(ledger, "al-2")
    store.close()
    assert report.ok and report.entries == 2
    assert b"sk-secret-456" not in p.entry and b'"api_key":{"$commit"' in p.entry


def test_proofs_by_record_and_consistency(filled: Path) -> None:
    store = open_store(f"sqlite:///{filled}")
    ledger = attach(store)
    p = prove(ledger, "0000000000000002")  # a step id
    verifier = ledger.verifier()
    got = verify_tlog_proof(p.to_text(), verifier)
    assert got.index == p.index and b'"name":"step2"' in got.entry
    first = p.checkpoint
    for b in run_batches(rid(9)):
        store.write(b)
    second = ledger.checkpoint()
    with store.read() as tx:
        proof = ledger.consistency_proof(tx, first.size, second.size)
        # proofs cost O(log n) stored hashes, never a rebuild
        assert len(proof) <= 2 * second.size.bit_length()
    rfc9162.verify_consistency(first.size, second.size, first.root, second.root, proof)
    run_proof = prove(ledger, rid(9))  # a run id: its latest entry (run.end)
    assert b'"kind":"run.end"' in run_proof.entry
    with pytest.raises(LedgerError):
        verify_tlog_proof(p.to_text().replace("index ", "index 1"), verifier)
    store.close()


def test_checkpoints_periodic_and_never_inconsistent(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTLOG_LEDGER_CHECKPOINT_EVERY", "8")
    monkeypatch.setenv("FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS", "0")  # by count only
    store = open_store(f"sqlite:///{db}")
    ledger = attach(store)
    for n in range(4):
        for b in run_batches(rid(n + 1)):
            store.write(b)
    with store.read() as tx:
        sizes = [s for s, _c, _n in ledger.checkpoint_notes(tx)]
    assert sizes == [9, 18, 27]  # signed before the batch that crossed each threshold
    for b in run_batches(rid(9)):
        store.write(b)
    # Rewrite an already-signed entry and recompute the whole tree as a careful forger
    # would: the next checkpoint must be refused, the forged tree never signed.
    _rewrite_history(db, 3, b"forged")
    with pytest.raises(LedgerError, match="refusing to sign"):
        ledger.checkpoint()
    with store.read() as tx:
        assert [s for s, _c, _n in ledger.checkpoint_notes(tx)] == [9, 18, 27, 36]
    r = verify(ledger)
    store.close()
    assert r.first is not None and r.first.code == "node.changed" or not r.ok
    assert any(p.code == "checkpoint.root" and "#0..#8" in p.message for p in r.problems)


def _rewrite_history(db: Path, seq: int, entry: bytes) -> None:
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE ledger_entries SET entry = ?, leaf = ? WHERE seq = ?",
        (entry, rfc9162.leaf_hash(entry), seq),
    )
    leaves = [bytes(x) for (x,) in conn.execute("SELECT leaf FROM ledger_entries ORDER BY seq")]
    conn.execute("DELETE FROM ledger_nodes")
    level, cur = 0, leaves
    while len(cur) > 1:
        level += 1
        cur = [rfc9162.node_hash(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
        conn.executemany(
            "INSERT INTO ledger_nodes (id, hash) VALUES (?, ?)",
            [(level << 48 | i, h) for i, h in enumerate(cur)],
        )
    conn.execute("UPDATE ledger_state SET root = ?", (rfc9162.root_from_leaves(leaves),))
    conn.commit()
    conn.close()


# -- tampering -------------------------------------------------------------------------------
def test_changed_byte_in_a_stored_record_is_named(filled: Path) -> None:
    _sql(
        filled, "UPDATE steps SET name = 'step9' WHERE run_id = ? AND id = ?", (rid(2), f"{3:016x}")
    )
    r = _verify(filled)
    assert not r.ok
    assert r.first is not None and r.first.code == "record.changed"
    assert r.first.record == f"{rid(2)}/{3:016x}" and r.first.index == 9 + 3
    assert "name" in r.first.message


def test_changed_byte_in_a_ledger_entry_is_named(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    (entry,) = conn.execute("SELECT entry FROM ledger_entries WHERE seq = 13").fetchone()
    changed = bytearray(entry)
    changed[40] ^= 0x01
    conn.execute("UPDATE ledger_entries SET entry = ? WHERE seq = 13", (bytes(changed),))
    conn.commit()
    r = _verify(filled)
    assert r.first is not None and r.first.code == "entry.changed" and r.first.index == 13


def test_changed_payload_is_named(filled: Path) -> None:
    _sql(filled, 'UPDATE payloads SET data = CAST(\'{"text":"x"}\' AS BLOB) WHERE rowid = 2')
    r = _verify(filled)
    assert not r.ok and r.first is not None and r.first.code == "payload.changed"


def test_deleted_record_is_named(filled: Path) -> None:
    _sql(filled, "DELETE FROM findings WHERE run_id = ?", (rid(3),))
    r = _verify(filled)
    assert r.first is not None and r.first.code == "record.deleted"
    assert r.first.index == 18 + 6


def test_deleted_ledger_entry_is_named(filled: Path) -> None:
    _sql(filled, "DELETE FROM ledger_entries WHERE seq = 5")
    r = _verify(filled)
    assert r.first is not None and r.first.code == "entry.missing" and r.first.index == 5


def test_reordered_entries_are_named(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    a = conn.execute("SELECT entry, leaf FROM ledger_entries WHERE seq = 10").fetchone()
    b = conn.execute("SELECT entry, leaf FROM ledger_entries WHERE seq = 11").fetchone()
    conn.execute("UPDATE ledger_entries SET entry = ?, leaf = ? WHERE seq = 10", b)
    conn.execute("UPDATE ledger_entries SET entry = ?, leaf = ? WHERE seq = 11", a)
    conn.commit()
    r = _verify(filled)
    assert not r.ok and r.first is not None
    assert r.first.index in (10, 11) or "#10..#11" in r.first.message


def test_inserted_record_is_named(filled: Path) -> None:
    store = open_store(f"sqlite:///{filled}")
    store.close()
    _sql(
        filled,
        "INSERT INTO steps (run_id, id, idx, name, kind, status, started_ns, attributes) "
        "VALUES (?, 'ffffffffffffffff', 9, 'forged', 'tool', 'ok', 1, '{}')",
        (rid(1),),
    )
    r = _verify(filled)
    assert r.first is not None and r.first.code == "record.unlogged"
    assert r.first.record == f"{rid(1)}/ffffffffffffffff"


def test_truncated_log_is_detected(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    conn.execute("DELETE FROM ledger_entries WHERE seq >= 20")
    conn.execute("DELETE FROM ledger_nodes WHERE (id & ((1 << 48) - 1)) << (id >> 48) >= 16")
    conn.execute("UPDATE ledger_state SET size = 20")
    conn.commit()
    r = _verify(filled)
    assert not r.ok
    codes = {p.code for p in r.problems}
    assert "checkpoint.beyond" in codes
    assert any("truncated" in p.message for p in r.problems)


def test_database_replaced_by_an_older_copy_is_detected(filled: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    src = sqlite3.connect(filled)
    dst = sqlite3.connect(old)
    src.backup(dst)
    src.close()
    dst.close()
    store = open_store(f"sqlite:///{filled}")
    for b in run_batches(rid(7)):
        store.write(b)
    attach(store).checkpoint()  # published to the witness file
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(str(filled) + suffix).unlink(missing_ok=True)
    shutil.copy(old, filled)
    r = _verify(filled)
    assert not r.ok
    assert any(p.code == "checkpoint.beyond" and "older copy" in p.message for p in r.problems)


def test_checkpoint_forged_with_another_key_is_detected(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    (origin,) = conn.execute("SELECT origin FROM ledger_state").fetchone()
    (size, root) = conn.execute("SELECT size, root FROM ledger_state").fetchone()
    from flightlog.ledger import checkpoint as cp_mod

    forged = cp_mod.sign(Signer.generate(origin), size + 1, bytes(root))
    conn.execute(
        "INSERT INTO ledger_checkpoints (size, created_ns, note) VALUES (?, 1, ?)",
        (size + 1, forged.note),
    )
    conn.commit()
    r = _verify(filled)
    assert any(p.code == "checkpoint.signature" for p in r.problems)
    assert "not signed by the ledger key" in r.problems[0].message or not r.ok


@pytest.mark.parametrize("edit", ["size", "root"])
def test_edited_checkpoint_is_detected(filled: Path, edit: str) -> None:
    conn = sqlite3.connect(filled)
    (size, note) = conn.execute("SELECT size, note FROM ledger_checkpoints").fetchone()
    lines = note.split("\n")
    if edit == "size":
        lines[1] = str(int(lines[1]) - 1)
    else:
        lines[2] = ("A" if lines[2][0] != "A" else "B") + lines[2][1:]
    conn.execute("UPDATE ledger_checkpoints SET note = ? WHERE size = ?", ("\n".join(lines), size))
    conn.commit()
    r = _verify(filled)
    assert not r.ok
    assert any(
        p.code == "checkpoint.signature" and "does not verify" in p.message for p in r.problems
    )


def test_checkpoint_row_size_edit_is_detected(filled: Path) -> None:
    _sql(filled, "UPDATE ledger_checkpoints SET size = size - 1")
    r = _verify(filled)
    assert any(p.code == "checkpoint.size" for p in r.problems)


def test_writes_from_two_store_handles_stay_consistent(db: Path) -> None:
    a = open_store(f"sqlite:///{db}")
    b = open_store(f"sqlite:///{db}")
    for n in range(3):
        a.write(run_batches(rid(2 * n + 1))[0])
        b.write(run_batches(rid(2 * n + 2))[0])
    report = verify(attach(a))
    a.close()
    b.close()
    assert report.ok and report.entries == 6


def test_large_step_batch_round_trip(db: Path) -> None:
    store = open_store(f"sqlite:///{db}")
    steps = [
        Step(
            run_id=rid(1),
            id=f"{i:016x}",
            name="s",
            kind="llm",
            index=i + 1,
            started_ns=10**18 + i,
            cost=1e-7 * i,
        )
        for i in range(3000)
    ]
    store.write(Batch(runs=[Run(id=rid(1), workflow="w", started_ns=10**18)], steps=steps))
    ledger = attach(store)
    cp = ledger.checkpoint()
    p = prove(ledger, "#2047")
    report = verify(ledger)
    store.close()
    assert report.ok and cp.size == 3001
    rfc9162.verify_inclusion(2047, cp.size, rfc9162.leaf_hash(p.entry), p.proof, cp.root)


def test_settings_from_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flightlog.ledger import ledger_enabled
    from flightlog.ledger.config import LedgerConfig

    cfg = tmp_path / "flightlog.toml"
    cfg.write_text(
        "[ledger]\n"
        f'key = "{tmp_path / "k.key"}"\n'
        "checkpoint_every = 5\n"
        'sensitive = ["*customer*"]\n'
        "retention_days = 400\n"
    )
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(cfg))
    c = LedgerConfig.from_env("sqlite:///x.db")
    assert c.key_path == tmp_path / "k.key" and c.checkpoint_every == 5
    assert c.retention_days == 400 and c.is_sensitive("Customer_Name")
    monkeypatch.setenv("FLIGHTLOG_LEDGER_CHECKPOINT_EVERY", "7")  # the variable wins
    assert LedgerConfig.from_env("sqlite:///x.db").checkpoint_every == 7
    assert ledger_enabled()
    cfg.write_text("[ledger]\nenabled = false\n")
    assert not ledger_enabled()
    store = open_store(f"sqlite:///{tmp_path / 'off.db'}")
    store.close()
    conn = sqlite3.connect(tmp_path / "off.db")
    assert conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'ledger_state'"
    ).fetchone() == (0,)
    monkeypatch.delenv("FLIGHTLOG_LEDGER_CHECKPOINT_EVERY")
    cfg.write_text("[ledger]\ncheckpoint_every = 'often'\n")
    from flightlog.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="checkpoint_every"):
        LedgerConfig.from_env("sqlite:///x.db")


# -- what verify checks, and whether it records the result -------------------------------
def _last_verification(db: Path) -> tuple[object, ...]:
    conn = sqlite3.connect(db)
    try:
        return tuple(
            conn.execute(
                "SELECT verified_ns, verified_ok, verified_message FROM ledger_state"
            ).fetchone()
        )
    finally:
        conn.close()


def test_check_records_and_save_result_are_separate_choices(filled: Path) -> None:
    _sql(
        filled, "UPDATE steps SET name = 'step9' WHERE run_id = ? AND id = ?", (rid(2), f"{3:016x}")
    )
    # Not saving the result still checks the records: the edit is found, nothing is written.
    before = _last_verification(filled)
    r = _verify(filled, save_result=False)
    assert r.first is not None and r.first.code == "record.changed"
    assert _last_verification(filled) == before
    # Only the log itself (entries, tree, checkpoints): the edited record is not looked at,
    # and the report says so rather than counting 0 records as verified.
    r = _verify(filled, check_records=False, save_result=False)
    assert r.ok and not r.records_checked and r.records == 0
    assert "records not checked" in r.summary()
    assert r.to_dict()["records_checked"] is False
    assert _last_verification(filled) == before
    # Saving (the default on a writable store) records what was found.
    r = _verify(filled)
    verified_ns, verified_ok, message = _last_verification(filled)
    assert verified_ns and verified_ok == 0 and "FAILED" in str(message)


def test_the_old_record_keyword_warns_and_names_its_replacement(filled: Path) -> None:
    with pytest.warns(DeprecationWarning, match="check_records="):
        r = _verify(filled, record=False)
    assert r.ok and not r.records_checked
    with pytest.warns(DeprecationWarning, match="check_records="):
        r = _verify(filled, record=True)
    assert r.ok and r.records_checked and r.records == 3 * (1 + 4 + 1 + 1)
