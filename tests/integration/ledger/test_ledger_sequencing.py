"""Sequencing on both stores: inline on SQLite, pending entries + one integrator on
PostgreSQL (docs/audit.md "Sequencing"). Real SQLite files, the real PostgreSQL server,
real processes (SIGKILL included)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from flightlog.app import open_store
from flightlog.ledger import attach
from flightlog.ledger.config import LedgerConfig
from flightlog.ledger.entry import Encoded, Encoder
from flightlog.ledger.log import INTEGRATOR_ROLE, IndexMark, Ledger
from tests.conftest import run_cli
from tests.integration.ledger._ledger_helpers import rid, run_batches

REPO = Path(__file__).resolve().parents[3]


def _hold_integrator_role(url: str) -> Any:
    """Take the integrator role from the test itself, so entries stay pending."""
    from flightlog.store.leader import Leadership

    role = Leadership(url, INTEGRATOR_ROLE)
    for _ in range(100):
        if role.try_acquire():
            return role
        time.sleep(0.1)
    raise AssertionError("could not take the integrator role")


def _items(n_runs: int) -> list[Encoded | IndexMark]:
    """Entries as the write hook makes them (with salted commitments), and run indexes."""
    enc = Encoder(LedgerConfig()).encode
    out: list[Encoded | IndexMark] = []
    t = 1_700_000_000_000_000_000
    for r in range(n_runs):
        run_id = rid(r + 1)
        out.append(enc("run.start", run_id, run_id, {"id": run_id, "reason": "why"}, t))
        for s in range(7):
            data = {"id": f"{s}", "run_id": run_id, "attributes": {"user.email": "a@b.c"}}
            out.append(enc("step", f"{run_id}/{s}", run_id, data, t + s))
        out.append(IndexMark(run_id, t + 99))
        out.append(enc("attribution", run_id, run_id, {"run_id": run_id, "summary": "x"}, t))
    return out


def _tree(ledger: Ledger) -> dict[str, Any]:
    from flightlog.ledger import rfc9162

    with ledger.store.read() as tx:
        size, root = ledger.head(tx)
        entries = tx.fetchall(
            "SELECT seq, kind, record_id, run_id, created_ns, entry, leaf, openings "
            "FROM ledger_entries ORDER BY seq"
        )
        nodes = tx.fetchall("SELECT id, hash FROM ledger_nodes ORDER BY id")
        roots = {n: ledger.root_at(tx, n) for n in range(1, size + 1)}
        proofs = {(i, size): ledger.inclusion_proof(tx, i, size) for i in range(0, size, 5)}
        cons = {(m, size): ledger.consistency_proof(tx, m, size) for m in range(1, size, 9)}
    for (i, n), p in proofs.items():
        rfc9162.verify_inclusion(i, n, bytes(entries[i][6]), p, root)
    return {
        "size": size,
        "root": bytes(root),
        "entries": [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in e) for e in entries
        ],
        "nodes": [(int(i), bytes(h)) for i, h in nodes],
        "roots": roots,
        "proofs": proofs,
        "consistency": cons,
    }


@pytest.mark.parametrize(
    ("runs", "cuts"),
    [
        (6, (13, 40)),  # 60 entries in three write transactions; interior hashes from 16 on
        (25, ()),  # 250 entries in one: more than a multi-row insert holds, and a remainder
    ],
    ids=["three-writes", "one-write-multi-row-inserts"],
)
def test_same_entries_same_log_on_sqlite_and_postgres(
    tmp_path: Path, pg_url: str, runs: int, cuts: tuple[int, ...]
) -> None:
    from flightlog.ledger.log import ENTRY_ROWS

    items = _items(runs)
    bounds = [0, *cuts, len(items)]
    if not cuts:
        assert len(items) > ENTRY_ROWS and len(items) % ENTRY_ROWS
    lite = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    pg = open_store(pg_url)
    try:
        lite_ledger, pg_ledger = attach(lite), attach(pg)
        assert not lite_ledger.pending_mode and pg_ledger.pending_mode
        role = _hold_integrator_role(pg_url)  # the test integrates, in small batches
        try:
            for lo, hi in pairwise(bounds):  # the write transactions
                part = items[lo:hi]
                with lite.transaction() as tx:
                    lite_ledger.submit(tx, part)
                with pg.transaction() as tx:
                    pg_ledger.submit(tx, part)
            assert pg_ledger.head()[0] == 0 and pg_ledger.pending() == len(items)
            while pg_ledger.integrate(limit=7):  # batch boundaries unlike the writes'
                pass
        finally:
            role.release()
        assert pg_ledger.pending() == 0
        a, b = _tree(lite_ledger), _tree(pg_ledger)
        assert a["size"] == b["size"] == len(items)
        for key in ("root", "entries", "nodes", "roots", "proofs", "consistency"):
            assert a[key] == b[key], key
    finally:
        lite.close()
        pg.close()


def test_pending_is_acknowledged_not_provable_and_never_an_alarm(pg_url: str) -> None:
    from flightlog.ledger.proof import PendingEntryError, prove, record_state, verify_tlog_proof
    from flightlog.ledger.verify import verify

    store = open_store(pg_url)
    ledger = attach(store)
    role = _hold_integrator_role(pg_url)
    try:
        for n in range(2):
            for b in run_batches(rid(n + 1)):
                store.write(b)
        store.write(run_batches(rid(3))[0])  # a run still open
        _open_incident(store, rid(1))  # its incident.transition entry is pending too
        # Acknowledged: the records are stored, their entries pending, the tree empty.
        assert store.get_run(rid(1)) is not None
        assert ledger.head()[0] == 0
        pending = ledger.pending()
        # per run: start, 4 steps, edge, finding, end, index; the open run; the incident
        assert pending == 2 * (1 + 4 + 1 + 1 + 1 + 1) + 1 + 1
        assert record_state(ledger, rid(1)) == {
            "record": rid(1),
            "state": "pending",
            "pending_id": record_state(ledger, rid(1))["pending_id"],
        }
        # A read-only verification cannot integrate: it reports the pending entries and
        # raises no alarm about records whose entries are pending.
        ro = open_store(pg_url, readonly=True)
        try:
            report = verify(attach(ro))
            with pytest.raises(PendingEntryError, match="acknowledged but not provable yet"):
                prove(attach(ro), rid(2))
        finally:
            ro.close()
        assert report.ok, report.problems
        assert report.pending == pending and report.entries == 0
        assert "pending integration" in report.summary()
        # The command line says the same (verify reads only: nothing gets integrated).
        out = run_cli("audit", "verify", "--db", pg_url, "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        assert json.loads(out.stdout)["pending"] == pending
        out = run_cli("audit", "status", "--db", pg_url, check=True)
        assert f"pending      {pending} acknowledged, not provable yet" in out.stdout
        assert f"integrator pid {os.getpid()}" in out.stdout  # this test holds the role
        # A record changed behind the log's back is still caught while its entry is pending.
        with store.transaction() as tx:
            tx.execute("UPDATE runs SET reason = 'edited' WHERE id = ?", (rid(2),))
        ro = open_store(pg_url, readonly=True)
        try:
            bad = verify(attach(ro))
        finally:
            ro.close()
        assert not bad.ok and bad.first is not None and bad.first.code == "record.changed"
        assert "pending ledger entry" in bad.first.message
        with store.transaction() as tx:
            tx.execute(
                "UPDATE runs SET reason = 'validator rejected the claim' WHERE id = ?", (rid(2),)
            )
    finally:
        role.release()
    # Writable: prove integrates what is pending first, then proves.
    proof = prove(ledger, rid(1))
    assert record_state(ledger, rid(1))["state"] == "integrated"
    assert verify_tlog_proof(proof.to_text(), ledger.verifier()).index == proof.index
    assert ledger.pending() == 0 and ledger.head()[0] == pending
    report = verify(ledger)
    assert report.ok and report.pending == 0 and report.entries == pending, report.problems
    store.close()


def _open_incident(store: Any, run_id: str) -> None:
    from flightlog.respond import incidents
    from flightlog.respond.schema import ensure_schema

    ensure_schema(store)
    facts = {
        "fingerprint": "fp-1",
        "workflow": "claims",
        "failure_step": "step4",
        "root_cause_step": "step1",
        "error_class": "ValueError",
        "severity": "error",
        "root_cause_team": "claims-team",
        "workflow_team": "claims-team",
    }
    with store.transaction() as tx:
        incidents.open_incident(
            store, tx, facts=facts, run_id=run_id, now_ns=time.time_ns(), previous=None
        )


_WRITER = textwrap.dedent(
    """
    import sys, time
    import flightlog.ledger.log as ledger_log
    ledger_log.INTEGRATE_BATCH = int(sys.argv[4])
    from flightlog.app import open_store
    from tests.integration.ledger._ledger_helpers import run_batches
    url, worker, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = open_store(url)
    for n in range(runs):
        for b in run_batches(f"{worker:04x}{n:04x}" + "ab" * 12, steps=5):
            store.write(b)
    print("written", flush=True)
    if sys.argv[5] == "stay":  # keep integrating until killed
        while True:
            time.sleep(1)
    if sys.argv[5] == "die":  # gone without closing: leaves its entries pending
        import os
        os._exit(0)
    store.close()
    """
)


def _spawn(url: str, worker: int, runs: int, batch: int = 5000, then: str = "close") -> Any:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WRITER,
            url,
            str(worker),
            str(runs),
            str(batch),
            then,
        ],
        cwd=REPO,
        env={"FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS": "1", **os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_one_entry_per_write(ledger: Ledger, workers: int, runs: int) -> None:
    from flightlog.ledger.verify import verify

    report = verify(ledger)
    assert report.ok, report.problems[:5]
    assert report.pending == 0
    with ledger.store.read() as tx:
        kinds = Counter(
            (str(k), str(r)) for k, r in tx.fetchall("SELECT kind, record_id FROM ledger_entries")
        )
        seqs = [int(r[0]) for r in tx.fetchall("SELECT seq FROM ledger_entries ORDER BY seq")]
        n_runs = tx.fetchone("SELECT COUNT(*) FROM runs")
    assert n_runs is not None and int(n_runs[0]) == workers * runs
    assert seqs == list(range(len(seqs)))  # one leaf per index, no gap
    per_kind = Counter(k for k, _r in kinds.elements())
    total = workers * runs
    assert per_kind == {
        "run.start": total,
        "run.end": total,
        "step": 5 * total,
        "edge": total,
        "finding": total,
        "run.index": total,
    }
    assert max(kinds.values()) == 1  # every record written once has exactly one leaf


def test_concurrent_writer_processes(pg_url: str) -> None:
    workers, runs = 4, 15
    procs = [_spawn(pg_url, w, runs) for w in range(workers)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    store = open_store(pg_url)
    try:
        _check_one_entry_per_write(attach(store), workers, runs)
    finally:
        store.close()


def _integrator_pid(ledger: Ledger) -> int | None:
    """The process holding the integrator role now (``audit status`` says it too)."""
    from flightlog.ledger.status import status

    held = status(ledger)["integrator"]
    return None if held is None else int(held["pid"])


@pytest.fixture
def killed() -> Iterator[list[Any]]:
    procs: list[Any] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_integrator_killed_mid_batch_is_taken_over(pg_url: str, killed: list[Any]) -> None:
    """A backlog of pending entries; the leader integrates it in small batches and is
    SIGKILLed after its first batch; another process takes the role over and finishes."""
    store = open_store(pg_url)
    ledger = attach(store)
    role = _hold_integrator_role(pg_url)
    workers, runs = 2, 20
    try:
        writers = [_spawn(pg_url, w, runs, then="die") for w in range(workers)]
        for p in writers:
            _out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err
        backlog = ledger.pending()
        assert backlog == workers * runs * 10 and ledger.head()[0] == 0
        # Two processes that stay up, each running an integrator (20 entries per batch).
        first = _spawn(pg_url, 10, 1, batch=20, then="stay")
        killed.append(first)
        assert first.stdout is not None and first.stdout.readline().strip() == "written"
    finally:
        role.release()
    # The first process takes the role (it is the only candidate now).
    deadline = time.monotonic() + 60
    while ledger.head()[0] == 0:
        assert time.monotonic() < deadline, "nobody integrated"
        time.sleep(0.02)
    assert _integrator_pid(ledger) == first.pid
    second = _spawn(pg_url, 11, 1, batch=20, then="stay")
    killed.append(second)
    first.send_signal(signal.SIGKILL)
    first.wait()
    left = ledger.pending()
    assert left > 0, "the backlog was integrated before the kill: make it larger"
    assert second.stdout is not None
    assert second.stdout.readline().strip() == "written"
    deadline = time.monotonic() + 120
    while ledger.pending() > 0:
        assert time.monotonic() < deadline, f"{ledger.pending()} entries still pending"
        time.sleep(0.1)
    assert _integrator_pid(ledger) == second.pid
    second.send_signal(signal.SIGKILL)
    second.wait()
    try:
        from flightlog.ledger.verify import verify

        report = verify(ledger)
        assert report.ok, report.problems[:5]
        with store.read() as tx:
            n = tx.fetchone("SELECT COUNT(*) FROM ledger_entries")
            dup = tx.fetchone(
                "SELECT COUNT(*) FROM (SELECT record_id FROM ledger_entries WHERE kind = 'step' "
                "GROUP BY record_id HAVING COUNT(*) > 1) d"
            )
        assert n is not None and int(n[0]) == backlog + 2 * 10
        assert dup is not None and int(dup[0]) == 0
    finally:
        store.close()


_KEY_MAKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from flightlog.ledger.log import load_signer
    path = Path(sys.argv[1])
    seen = set()
    for _ in range(200):  # the first creates (or reads), the rest read while others create
        seen.add(load_signer(path, "flightlog.local/race", create=True).verifier.encode())
    print(*seen)
    """
)


def test_processes_creating_the_signing_key_at_once_get_one_key(tmp_path: Path) -> None:
    """Several writers of one store sign checkpoints: the key file is never read half
    written, and all of them end up with the same key."""
    for attempt in range(3):
        path = tmp_path / f"k{attempt}" / "log.key"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _KEY_MAKER, str(path)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        keys = set()
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            keys.update(out.split())
        assert len(keys) == 1
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        assert [p.name for p in path.parent.iterdir()] == ["log.key"]  # no temporary left


def test_verify_during_ingestion_raises_no_alarm(
    pg_url: str, tmp_path: Path, killed: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ordinary ingestion with the integrator signing and publishing checkpoints all the
    time: read-only verifications running meanwhile never report tampering (a checkpoint
    published after verify's snapshot began is not "beyond the log")."""
    from flightlog.ledger.verify import verify

    witness = tmp_path / "witness"
    env = {
        "FLIGHTLOG_LEDGER_WITNESS": str(witness),
        "FLIGHTLOG_LEDGER_KEY": str(tmp_path / "log.key"),
        "FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS": "0.01",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    open_store(pg_url).close()  # the tables
    writers = [_spawn(pg_url, w, 40, batch=30) for w in range(2)]
    killed.extend(writers)
    reports = []
    while any(p.poll() is None for p in writers):
        ro = open_store(pg_url, readonly=True)
        try:
            reports.append(verify(attach(ro)))
        finally:
            ro.close()
    for p in writers:
        assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    assert len(reports) >= 2
    bad = [r for r in reports if not r.ok]
    assert not bad, [(r.first, r.size, r.pending) for r in bad][:3]
    assert any(r.witnessed for r in reports)


def test_bundle_of_a_run_with_pending_entries_is_complete(pg_url: str, tmp_path: Path) -> None:
    """audit export on PostgreSQL: the run's pending entries (and its index) are integrated
    first, so the bundle proves every entry of the run."""
    from flightlog.ledger.bundle import export, verify_bundle

    store = open_store(pg_url)
    ledger = attach(store)
    role = _hold_integrator_role(pg_url)
    try:
        for b in run_batches(rid(7)):
            store.write(b)
        assert ledger.head()[0] == 0 and ledger.pending() == 9  # 8 records + the run's index
        summary = export(ledger, tmp_path / "b.json", run_id=rid(7))
    finally:
        role.release()
    report = verify_bundle(tmp_path / "b.json", ledger.verifier().encode())
    # its 8 records, the index written when it ended, and the index export added, which
    # lists the 9 before it
    assert summary.entries == 10 and report.complete == {rid(7): 9}
    assert ledger.pending() == 0
    store.close()


OLD_NS = 946_684_800_000_000_000  # 2000-01-01: outside any retention window


def test_prune_takes_pending_entries_of_the_pruned_runs_too(pg_url: str) -> None:
    """A late step of an old run is acknowledged (pending) when the run is pruned: its
    entry is pruned with the others; nothing of it survives and verify raises no alarm."""
    import dataclasses

    from flightlog.ledger.retention import prune
    from flightlog.ledger.verify import verify
    from flightlog.model import Batch

    store = open_store(pg_url)
    ledger = attach(store)
    role = _hold_integrator_role(pg_url)
    try:
        batches = run_batches(rid(1), secret="alice")
        for b in batches:
            b.runs = [
                dataclasses.replace(r, started_ns=OLD_NS, ended_ns=r.ended_ns and OLD_NS + 9)
                for r in b.runs
            ]
            store.write(b)
        ledger.integrate_pending()
        late = dataclasses.replace(
            batches[1].steps[0], id="00000000000000ff", attributes={"sensitive.note": "late"}
        )
        store.write(Batch(steps=[late]))
        assert ledger.pending() == 1
        assert prune(ledger, OLD_NS + 1).runs == 1
    finally:
        role.release()
    assert ledger.pending() == 0
    with store.read() as tx:
        left = tx.fetchall(
            "SELECT seq FROM ledger_entries WHERE run_id = ? AND kind = 'step' "
            "AND (entry IS NOT NULL OR openings IS NOT NULL)",
            (rid(1),),
        )
    report = verify(ledger)
    store.close()
    assert left == [] and report.ok, (left, report.problems)


def test_redaction_covers_a_record_committed_while_it_runs(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer commits a new step of the run after redaction began (its entry pending):
    redaction still erases it, in the record and in the log."""
    import threading

    from flightlog.ledger import redact
    from flightlog.ledger.verify import verify
    from flightlog.model import Batch, Step

    store = open_store(pg_url)
    ledger = attach(store)
    for b in run_batches(rid(1), secret="alice"):
        store.write(b)
    ledger.integrate_pending()
    original = redact.core.redactable_rows

    def a_writer_commits_first(tx: Any, run_id: str) -> Any:
        step = Step(
            run_id=rid(1),
            id="00000000000000ff",
            name="late",
            kind="tool",
            index=9,
            started_ns=1,
            ended_ns=2,
            attributes={"sensitive.note": "SECRET-of-alice"},
        )
        writer = threading.Thread(target=store.write, args=(Batch(steps=[step]),))
        writer.start()
        writer.join()
        return original(tx, run_id)

    monkeypatch.setattr(redact.core, "redactable_rows", a_writer_commits_first)
    redact.redact_run(ledger, rid(1))
    monkeypatch.undo()
    with store.read() as tx:
        row = tx.fetchone(
            "SELECT attributes FROM steps WHERE run_id = ? AND id = ?",
            (rid(1), "00000000000000ff"),
        )
        opened = tx.fetchall(
            "SELECT seq FROM ledger_entries WHERE run_id = ? AND openings IS NOT NULL",
            (rid(1),),
        )
    assert ledger.pending() == 0
    report = verify(ledger)
    store.close()
    assert row is not None and "SECRET" not in str(row[0])
    assert opened == [] and report.ok, (opened, report.problems)
