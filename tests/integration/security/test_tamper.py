"""Every tamper case against a store made by ``flightlog demo`` (real SQLite file, real CLI in
subprocesses, the key and witness in the demo's own configuration directory): each is a
finding of ``flightlog audit verify`` (exit 1, the problem named), never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """One demo store for the module; each test tampers with its own copy."""
    root = tmp_path_factory.mktemp("demo")
    config = root / "config"
    env = _env(config)
    out = subprocess.run(
        [sys.executable, "-m", "flightlog", "demo", "--dir", str(root / "d"), "--runs", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    yield {"dir": root / "d", "config": config}


def _env(config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")}
    env["XDG_CONFIG_HOME"] = str(config)
    env.update(extra)
    return env


def _copy(demo: dict[str, Path], tmp_path: Path) -> Path:
    db = tmp_path / "copy.db"
    shutil.copy(demo["dir"] / "flightlog.db", db)
    return db


def _sql(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    for stmt in statements:
        conn.execute(stmt)
    conn.commit()
    conn.close()


def _fl(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightlog", *args],
        capture_output=True,
        text=True,
        env=_env(config, **env),
        timeout=120,
    )


def _verify(demo: dict[str, Path], db: Path, **env: str) -> dict[str, object]:
    out = _fl(demo["config"], "audit", "verify", "--db", f"sqlite:///{db}", "--json", **env)
    assert "Traceback" not in out.stderr, out.stderr
    report: dict[str, object] = json.loads(out.stdout)
    assert out.returncode == (0 if report["ok"] else 1)
    return report


def _codes(report: dict[str, object]) -> set[str]:
    return {str(p["code"]) for p in report["problems"]}  # type: ignore[attr-defined, index]


def test_the_untouched_demo_store_verifies(demo: dict[str, Path], tmp_path: Path) -> None:
    report = _verify(demo, _copy(demo, tmp_path))
    assert report["ok"] is True and report["witnessed"] >= 1


def test_a_deleted_payload_is_detected(demo: dict[str, Path], tmp_path: Path) -> None:
    db = _copy(demo, tmp_path)
    _sql(db, "DELETE FROM payloads WHERE hash IN (SELECT output_hash FROM steps LIMIT 1)")
    report = _verify(demo, db)
    assert "payload.deleted" in _codes(report)
    assert "was deleted" in str(report["summary"])


def test_every_payload_deleted_is_detected(demo: dict[str, Path], tmp_path: Path) -> None:
    db = _copy(demo, tmp_path)
    _sql(db, "DELETE FROM payloads")
    report = _verify(demo, db)
    assert _codes(report) == {"payload.deleted"}
    assert len(report["problems"]) > 10  # type: ignore[arg-type]


def test_an_altered_payload_is_detected(demo: dict[str, Path], tmp_path: Path) -> None:
    db = _copy(demo, tmp_path)
    _sql(db, "UPDATE payloads SET data = CAST('{\"approved\":true}' AS BLOB) WHERE rowid = 3")
    assert "payload.changed" in _codes(_verify(demo, db))


def test_a_payload_deleted_with_its_reference_is_detected(
    demo: dict[str, Path], tmp_path: Path
) -> None:
    """Clearing the step's reference too (to look like a redaction) is caught by the ledger."""
    db = _copy(demo, tmp_path)
    _sql(
        db,
        "CREATE TABLE victim AS SELECT run_id, id, output_hash FROM steps "
        "WHERE output_hash IS NOT NULL LIMIT 1",
        "DELETE FROM payloads WHERE hash IN (SELECT output_hash FROM victim)",
        "UPDATE steps SET output_hash = NULL WHERE id IN (SELECT id FROM victim)",
        "DROP TABLE victim",
    )
    report = _verify(demo, db)
    assert "record.changed" in _codes(report) and "output_hash" in str(report["summary"])


def test_a_redacted_payload_is_told_apart_from_a_deleted_one(
    demo: dict[str, Path], tmp_path: Path
) -> None:
    db = _copy(demo, tmp_path)
    conn = sqlite3.connect(db)
    (run_id,) = conn.execute("SELECT id FROM runs WHERE status = 'failed'").fetchone()
    conn.close()
    out = _fl(demo["config"], "audit", "redact", "--db", f"sqlite:///{db}", "--run", run_id)
    assert out.returncode == 0, out.stderr
    report = _verify(demo, db)
    assert report["ok"] is True and report["redacted"] > 0  # redacted: verifies, counted


def test_incident_edits_are_detected(demo: dict[str, Path], tmp_path: Path) -> None:
    for edit, what in (
        (
            "UPDATE respond_incidents SET status = 'resolved', resolved_by = 'x', resolved_ns = 1",
            "status",
        ),
        ("UPDATE respond_incidents SET severity = 'info'", "severity"),
        ("UPDATE respond_incidents SET root_cause_team = 'someone-else'", "root_cause_team"),
        ("UPDATE respond_incidents SET run_count = 0", "run_count"),
    ):
        db = _copy(demo, tmp_path)
        _sql(db, edit)
        report = _verify(demo, db)
        assert "incident.changed" in _codes(report), edit
        assert what in str(report["summary"]), report["summary"]


def test_a_deleted_or_inserted_incident_is_detected(demo: dict[str, Path], tmp_path: Path) -> None:
    db = _copy(demo, tmp_path)
    _sql(db, "DELETE FROM respond_incidents")
    assert "incident.deleted" in _codes(_verify(demo, db))
    db = _copy(demo, tmp_path)
    _sql(
        db,
        "INSERT INTO respond_incidents SELECT id + 100, fingerprint, workflow, failure_step, "
        "root_cause_step, root_cause_agent, error_class, severity, status, root_cause_team, "
        "workflow_team, opened_ns, acknowledged_ns, acknowledged_by, resolved_ns, resolved_by, "
        "updated_ns, last_failure_ns, run_count, first_run_id, last_run_id, success_streak, "
        "previous_id, next_id, chain, attribution FROM respond_incidents",
    )
    assert "incident.unlogged" in _codes(_verify(demo, db))


def test_notification_edits_are_detected(demo: dict[str, Path], tmp_path: Path) -> None:
    db = _copy(demo, tmp_path)
    _sql(db, "UPDATE respond_outbox SET channel = 'nobody' WHERE status = 'delivered'")
    assert "notification.changed" in _codes(_verify(demo, db))
    db = _copy(demo, tmp_path)
    _sql(db, "DELETE FROM respond_outbox")
    assert "notification.deleted" in _codes(_verify(demo, db))


def test_a_corrupted_openings_blob_is_a_finding_not_a_traceback(
    demo: dict[str, Path], tmp_path: Path
) -> None:
    db = _copy(demo, tmp_path)
    _sql(
        db,
        "UPDATE ledger_entries SET openings = X'00FF7B' WHERE seq = "
        "(SELECT MIN(seq) FROM ledger_entries WHERE openings IS NOT NULL)",
    )
    report = _verify(demo, db)
    assert "opening.corrupt" in _codes(report)
    db = _copy(demo, tmp_path)
    _sql(db, "UPDATE steps SET attributes = '{not json' WHERE rowid = 2")
    assert "record.corrupt" in _codes(_verify(demo, db))


def test_a_copied_store_without_its_key_says_key_file_missing(
    demo: dict[str, Path], tmp_path: Path
) -> None:
    db = _copy(demo, tmp_path)
    elsewhere = tmp_path / "other-config"
    out = _fl(elsewhere, "audit", "verify", "--db", f"sqlite:///{db}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "key file missing" in out.stdout and "divergence" not in out.stdout
    assert "FLIGHTLOG_LEDGER_KEY" in out.stdout and "--key" in out.stdout
    # Reads never create a key file.
    for args in (["runs"], ["audit", "status"], ["audit", "verify"]):
        _fl(elsewhere, *args, "--db", f"sqlite:///{db}")
    assert not list(elsewhere.rglob("*.key"))
    assert not list(tmp_path.glob("*.ledger-key"))
    # Pointing at the key (or passing the public key) makes it verify.
    key = next((demo["config"] / "flightlog" / "keys").glob("*.key"))
    ok = _fl(elsewhere, "audit", "verify", "--db", f"sqlite:///{db}", FLIGHTLOG_LEDGER_KEY=str(key))
    assert ok.returncode == 0, ok.stdout
    public = _fl(demo["config"], "audit", "key", "--db", f"sqlite:///{db}").stdout.strip()
    ok = _fl(elsewhere, "audit", "verify", "--db", f"sqlite:///{db}", "--key", public)
    assert ok.returncode == 0, ok.stdout


def test_the_key_lives_outside_the_store_directory(demo: dict[str, Path]) -> None:
    keys = list((demo["config"] / "flightlog" / "keys").glob("*.key"))
    assert len(keys) == 1 and oct(keys[0].stat().st_mode & 0o777) == "0o600"
    assert oct(keys[0].parent.stat().st_mode & 0o777) == "0o700"
    assert not [p for p in demo["dir"].iterdir() if p.suffix in (".key", ".ledger-key")]


def test_a_bundle_without_the_failing_step_fails(demo: dict[str, Path], tmp_path: Path) -> None:
    (bundle_path,) = demo["dir"].glob("audit-*.json")
    bundle = json.loads(bundle_path.read_text())
    entries = bundle["entries"]
    failing = next(
        e for e in entries if '"kind":"step"' in e["entry"] and '"status":"error"' in e["entry"]
    )
    bundle["entries"] = [e for e in entries if e is not failing]
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps(bundle))
    out = _fl(demo["config"], "audit", "verify-bundle", str(cut))
    assert out.returncode == 1 and "incomplete" in out.stderr and "Traceback" not in out.stderr
    assert f"#{failing['index']}" in out.stderr
    # Removing the run's indexes too: completeness can no longer be claimed.
    bundle["entries"] = [e for e in bundle["entries"] if '"kind":"run.index"' not in e["entry"]]
    cut.write_text(json.dumps(bundle))
    out = _fl(demo["config"], "audit", "verify-bundle", str(cut))
    assert out.returncode == 1 and "holds no index" in out.stderr
    whole = _fl(demo["config"], "audit", "verify-bundle", str(bundle_path))
    assert whole.returncode == 0 and "complete: all" in whole.stdout


_FAILED_RUN = "(SELECT id FROM runs WHERE status = 'failed')"


@pytest.mark.parametrize(
    "column, value",
    [("kind", "'attribution'"), ("record_id", "'x'"), ("run_id", "NULL"), ("created_ns", "1")],
)
def test_a_relabelled_entry_column_is_detected(
    demo: dict[str, Path], tmp_path: Path, column: str, value: str
) -> None:
    """The columns beside an entry (kind, record id, run id, time) are not hashed: verify
    reads them from the entry's bytes and names an edited column."""
    db = _copy(demo, tmp_path)
    _sql(
        db,
        f"UPDATE ledger_entries SET {column} = {value} WHERE seq = (SELECT MIN(seq) FROM "
        f"ledger_entries WHERE kind = 'step' AND run_id = {_FAILED_RUN})",
    )
    report = _verify(demo, db)
    assert "entry.relabelled" in _codes(report), report["summary"]
    assert f"its {column} column says" in str(report["summary"])


def test_a_run_deleted_behind_an_index_relabelled_as_pruning_is_detected(
    demo: dict[str, Path], tmp_path: Path
) -> None:
    """A run's index lists its entries, as a retention.prune entry does: relabelled as one
    (a column, not hashed), it excused deleting the whole failed run."""
    db = _copy(demo, tmp_path)
    _sql(
        db,
        "UPDATE ledger_entries SET kind = 'retention.prune' WHERE kind = 'run.index' "
        f"AND run_id = {_FAILED_RUN}",
        *(
            f"DELETE FROM {table} WHERE run_id = {_FAILED_RUN}"
            for table in ("steps", "edges", "findings", "forensics_attributions")
        ),
        f"DELETE FROM runs WHERE id = {_FAILED_RUN}",
    )
    report = _verify(demo, db)
    assert report["ok"] is False
    assert {"entry.relabelled", "record.deleted"} <= _codes(report)


def test_openings_of_an_audit_entry_deleted_or_edited_are_detected(
    demo: dict[str, Path], tmp_path: Path
) -> None:
    """No stored record is compared with an attribution's entry; its openings (what an
    export shows) deleted without a redaction, or given another value, are findings."""
    start = "(SELECT seq FROM ledger_entries WHERE kind = 'attribution' LIMIT 1)"
    db = _copy(demo, tmp_path)
    _sql(db, f"UPDATE ledger_entries SET openings = NULL WHERE seq = {start}")
    report = _verify(demo, db)
    assert "opening.missing" in _codes(report) and "no redaction covers it" in str(
        report["summary"]
    )
    db = _copy(demo, tmp_path)
    conn = sqlite3.connect(db)
    (opened,) = conn.execute(f"SELECT openings FROM ledger_entries WHERE seq = {start}").fetchone()
    items = json.loads(opened)
    items[0][2] = "nothing unusual was found"  # another text under the same salt
    conn.execute(
        f"UPDATE ledger_entries SET openings = ? WHERE seq = {start}", (json.dumps(items),)
    )
    conn.commit()
    conn.close()
    report = _verify(demo, db)
    assert "opening.corrupt" in _codes(report) and "do not match the commitment" in str(
        report["summary"]
    )


def test_attribution_edits_are_detected(demo: dict[str, Path], tmp_path: Path) -> None:
    """The stored attribution (root cause, its owner, confidence, free text) is what the
    report and the incident show: each edit, and its deletion, is named."""
    cases = {
        "owner": "UPDATE forensics_attributions SET data = "
        'replace(data, \'"owner":"search-team"\', \'"owner":"risk-team"\')',
        "root_step_id": "UPDATE forensics_attributions SET root_step_id = '0000000000000000'",
        "confidence": "UPDATE forensics_attributions SET confidence = 0.1",
        "cause was changed": "UPDATE forensics_attributions SET data = "
        "json_set(data, '$.cause', 'the validator was misconfigured')",
        "no longer stored": "DELETE FROM forensics_attributions",
    }
    for said, stmt in cases.items():
        db = _copy(demo, tmp_path)
        _sql(db, stmt)
        report = _verify(demo, db)
        assert _codes(report) & {"attribution.changed", "attribution.deleted"}, said
        assert said in str(report["summary"]), report["summary"]


def _verify_bundle(demo: dict[str, Path], tmp_path: Path, bundle: dict[str, object]) -> str:
    cut = tmp_path / "edited.json"
    cut.write_text(json.dumps(bundle))
    out = _fl(demo["config"], "audit", "verify-bundle", str(cut))
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == (0 if out.stdout.startswith("verified") else 1)
    return out.stdout + out.stderr


def test_a_bundle_cut_after_an_earlier_index_fails(demo: dict[str, Path], tmp_path: Path) -> None:
    """The export's index is the last entry its checkpoint covers: dropped (with the entries
    logged after the run's previous index, such as its attribution), the bundle fails; with
    its selection removed as well, completeness is claimed only up to the earlier index."""
    (bundle_path,) = demo["dir"].glob("audit-*.json")
    bundle = json.loads(bundle_path.read_text())
    entries = bundle["entries"]
    indexes = [e["index"] for e in entries if '"kind":"run.index"' in e["entry"]]
    assert len(indexes) >= 2
    earlier = sorted(indexes)[-2]
    bundle["entries"] = [e for e in entries if e["index"] <= earlier]
    said = _verify_bundle(demo, tmp_path, bundle)
    assert "does not end with the latest index" in said and f"#{earlier}" in said
    assert "export it again" in said
    bundle["selection"] = {"run": None, "since_ns": None}
    said = _verify_bundle(demo, tmp_path, bundle)
    assert said.startswith("verified") and f"up to its index, entry #{earlier}" in said


def test_a_bundle_with_a_repeated_entry_or_a_missing_payload_fails(
    demo: dict[str, Path], tmp_path: Path
) -> None:
    (bundle_path,) = demo["dir"].glob("audit-*.json")
    bundle = json.loads(bundle_path.read_text())
    twice = dict(bundle, entries=[*bundle["entries"], bundle["entries"][0]])
    assert "twice" in _verify_bundle(demo, tmp_path, twice)
    payloads = dict(bundle["payloads"])
    gone = sorted(payloads)[0]
    del payloads[gone]
    said = _verify_bundle(demo, tmp_path, dict(bundle, payloads=payloads))
    assert f"payload {gone}, opened in the bundle's entries, is missing" in said
