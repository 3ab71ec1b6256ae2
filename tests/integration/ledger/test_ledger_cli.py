"""``flightlog audit ...`` end to end, in subprocesses, on a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flightlog.app import open_store
from flightlog.ledger.anchor import read_witness
from tests.integration.ledger._ledger_helpers import rid


def fl(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "flightlog", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=120,
    )


def test_status_key_checkpoint_verify(filled: Path) -> None:
    db = f"sqlite:///{filled}"
    key = fl("audit", "key", "--db", db)
    assert key.returncode == 0 and key.stdout.count("+") >= 2
    cp = fl("audit", "checkpoint", "--db", db)
    assert cp.returncode == 0 and "\n27\n" in cp.stdout and "\n— flightlog.local/" in cp.stdout
    ok = fl("audit", "verify", "--db", db, "--key", key.stdout.strip(), "--record")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: 27 entries")
    st = json.loads(fl("audit", "status", "--db", db, "--json").stdout)
    assert st["size"] == 27 and st["last_checkpoint"]["size"] == 27
    assert st["last_verification"]["ok"] is True
    assert st["verifier_key"] == key.stdout.strip()
    assert oct(Path(st["key_path"]).stat().st_mode & 0o777) == "0o600"
    text = fl("audit", "status", "--db", db).stdout
    assert "entries      27" in text and "verified" in text


def test_verify_fails_with_exit_1_and_names_the_entry(filled: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(filled)
    conn.execute("UPDATE runs SET status = 'succeeded' WHERE id = ?", (rid(3),))
    conn.commit()
    out = fl("audit", "verify", "--db", f"sqlite:///{filled}")
    assert out.returncode == 1
    assert out.stdout.startswith("FAILED") and "entry #25" in out.stdout and "status" in out.stdout
    js = json.loads(fl("audit", "verify", "--db", f"sqlite:///{filled}", "--json").stdout)
    assert js["ok"] is False and js["problems"][0]["index"] == 25


def test_prove_export_verify_bundle_and_tampered_bundle(filled: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{filled}"
    key = fl("audit", "key", "--db", db).stdout.strip()
    proof = tmp_path / "step.tlog-proof"
    out = fl("audit", "prove", f"{2:016x}", "--db", db, "--out", str(proof))
    assert out.returncode == 0, out.stderr
    assert proof.read_text().startswith("c2sp.org/tlog-proof@v1\nextra ")
    checked = fl("audit", "verify-bundle", str(proof), "--key", key)
    assert checked.returncode == 0 and "is included in checkpoint" in checked.stdout

    bundle = tmp_path / "run.json"
    out = fl("audit", "export", "--run", rid(2)[:6], "--db", db, "--out", str(bundle))
    assert out.returncode == 0 and "10 entries of 1 run(s)" in out.stdout
    checked = fl("audit", "verify-bundle", str(bundle), "--key", key, "--json")
    rep = json.loads(checked.stdout)
    assert rep["entries"] == 10 and rep["runs"] == [rid(2)] and rep["key_pinned"] is True

    since = fl("audit", "export", "--since", "1h", "--db", db, "--out", str(tmp_path / "all.json"))
    assert since.returncode == 0 and "28 entries of 3 run(s)" in since.stdout

    data = json.loads(bundle.read_text())
    data["entries"][3]["entry"] = data["entries"][3]["entry"].replace("step", "stap", 1)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    failed = fl("audit", "verify-bundle", str(bad))
    assert failed.returncode == 1 and failed.stderr.startswith("error: entry #")
    assert "Traceback" not in failed.stderr

    other = f"sqlite:///{tmp_path / 'other.db'}"
    open_store(other).close()  # another store, with a key of its own
    other_key = fl("audit", "key", "--db", other).stdout.strip()
    assert other_key
    wrong = fl("audit", "verify-bundle", str(bundle), "--key", other_key)
    assert wrong.returncode == 1 and "not signed by the ledger key" in wrong.stderr


def test_redact_command(filled: Path) -> None:
    db = f"sqlite:///{filled}"
    out = fl("audit", "redact", "--run", rid(1), "--db", db, "--reason", "erasure request")
    assert out.returncode == 0 and "redacted run" in out.stdout
    assert fl("audit", "verify", "--db", db).returncode == 0


def test_errors_are_one_line(filled: Path) -> None:
    out = fl("audit", "prove", "nosuchrecord", "--db", f"sqlite:///{filled}")
    assert out.returncode == 1 and out.stderr.startswith(
        "error: no ledger entry for 'nosuchrecord'"
    )
    out = fl("audit", "export", "--db", f"sqlite:///{filled}", "--out", "x.json")
    assert out.returncode == 1 and "exactly one of" in out.stderr
    # --out in a directory that does not exist: said before any work (export and a
    # consistency proof sign a checkpoint first), not a FileNotFoundError traceback after it.
    db = f"sqlite:///{filled}"

    def state() -> tuple[int, int]:
        st = json.loads(fl("audit", "status", "--db", db, "--json").stdout)
        return st["size"], st["checkpoints"]

    before = state()
    missing = filled.parent / "no-such-dir" / "x.json"
    for args in (
        ("export", "--run", rid(2)[:6], "--out", str(missing)),
        ("prove", "#0", "--out", str(missing)),
        ("prove", "--consistency", "1", "--out", str(missing)),
    ):
        out = fl("audit", *args, "--db", db)
        assert out.returncode == 1 and "Traceback" not in out.stderr, (args, out.stderr)
        assert f"cannot write {missing}: directory {missing.parent} does not exist" in out.stderr
    assert state() == before  # nothing was signed on the way


def test_checkpoint_anchored_in_git(filled: Path, tmp_path: Path) -> None:
    repo = tmp_path / "witness-repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    db = f"sqlite:///{filled}"
    from flightlog.app import open_store
    from flightlog.ledger import attach

    store = open_store(db)
    from tests.integration.ledger._ledger_helpers import run_batches

    for b in run_batches(rid(5)):
        store.write(b)
    store.close()
    out = fl("audit", "checkpoint", "--db", db, "--git", str(repo))
    assert out.returncode == 0, out.stderr
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--oneline"], capture_output=True, text=True
    )
    assert "size 36" in log.stdout
    files = list(repo.glob("*.checkpoints"))
    assert len(files) == 1 and len(read_witness(files[0])) == 1
    ok = fl("audit", "verify", "--db", db, "--witness", str(files[0]))
    assert ok.returncode == 0 and "1 witnessed" in ok.stdout
    del attach


@pytest.mark.parametrize(
    "cmd", ["status", "key", "checkpoint", "verify", "prove", "export", "verify-bundle", "redact"]
)
def test_help_texts(cmd: str) -> None:
    out = fl("audit", cmd, "--help")
    assert out.returncode == 0 and "Usage: flightlog audit " + cmd in out.stdout


def test_consistency_proof_command(filled: Path, tmp_path: Path) -> None:
    from flightlog.app import open_store
    from flightlog.ledger.note import Verifier
    from flightlog.ledger.proof import verify_consistency_proof
    from tests.integration.ledger._ledger_helpers import run_batches

    db = f"sqlite:///{filled}"
    store = open_store(db)
    for b in run_batches(rid(6)):
        store.write(b)
    store.close()
    out = fl("audit", "prove", "--consistency", "27", "--db", db)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    key = Verifier.parse(fl("audit", "key", "--db", db).stdout.strip())
    proof = verify_consistency_proof(data, key)
    assert (proof.old.size, proof.new.size) == (27, 36)
    data["proof"][0] = data["proof"][1]
    with pytest.raises(Exception, match="consistency proof"):
        verify_consistency_proof(data, key)
    missing = fl("audit", "prove", "--consistency", "23", "--db", db)
    assert missing.returncode == 1 and "no checkpoint of size 23" in missing.stderr


def test_a_store_recorded_with_the_ledger_off_says_so(tmp_path: Path) -> None:
    """audit verify / status on it said it needs migrating by a writing command, or "the
    Flightlog that wrote it", as if it were an old store."""
    script = (
        "import flightlog\n"
        "flightlog.configure('sqlite:///off.db')\n"
        "with flightlog.run('wf'):\n"
        "    pass\n"
        "flightlog.flush()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")},
            "FLIGHTLOG_LEDGER": "off",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for command in ("verify", "status"):
        out = fl("audit", command, "--db", "sqlite:///off.db", cwd=tmp_path)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert "has no audit ledger: its records were written with the ledger off" in out.stderr
    # Once a writing command has attached a ledger, those runs are unlogged records: the
    # divergence names the ledger being off as a cause, not only tampering.
    assert fl("audit", "key", "--db", "sqlite:///off.db", cwd=tmp_path).returncode == 0
    out = fl("audit", "verify", "--db", "sqlite:///off.db", cwd=tmp_path)
    assert out.returncode == 1 and "recorded while the ledger was off" in out.stdout + out.stderr
