"""Appends are durable before acknowledgement; a bundle verifies in a fresh environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flightlog.app import open_store
from flightlog.ledger import attach
from flightlog.ledger.bundle import export
from flightlog.ledger.verify import verify

WRITER = textwrap.dedent(
    """
    import sys, time
    from flightlog.model import Batch, Run, Step
    from flightlog.app import open_store

    store = open_store(sys.argv[1])
    run_id = "ab" * 16
    t = time.time_ns()
    store.write(Batch(runs=[Run(id=run_id, workflow="w", started_ns=t)]))
    i = 0
    while True:
        steps = [Step(run_id=run_id, id=f"{i + k:016x}", name="s", kind="tool", index=i + k + 1,
                      started_ns=t + i + k) for k in range(50)]
        store.write(Batch(steps=steps))
        i += 50
        # acknowledged: write() returned, so these must survive anything
        print(steps[-1].id, flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_during_appends_leaves_a_verifying_log(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")}
    env["FLIGHTLOG_LEDGER_CHECKPOINT_EVERY"] = "500"  # checkpoints get signed mid-run too
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, f"sqlite:///{db}"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 60
    while len(acked) < 60 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(acked) >= 60, "the writer did not acknowledge enough batches"

    store = open_store(f"sqlite:///{db}")
    ledger = attach(store)
    report = verify(ledger)
    with store.read() as tx:
        logged = {r[0] for r in tx.fetchall("SELECT record_id FROM ledger_entries")}
        checkpoints = ledger.checkpoint_notes(tx)
    store.close()
    assert report.ok, report.summary()
    assert all(f"{'ab' * 16}/{sid}" in logged for sid in acked)
    assert report.entries >= 1 + 50 * len(acked)
    # A checkpoint is published before its transaction commits: a writer killed in between
    # leaves the witness one ahead of the table (of a state that was already durable).
    assert checkpoints and len(checkpoints) <= report.witnessed <= len(checkpoints) + 1


@pytest.mark.slow
def test_bundle_verifies_in_a_fresh_venv_without_a_store(filled: Path, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{filled}")
    ledger = attach(store)
    bundle = tmp_path / "bundle.json"
    from tests.integration.ledger._ledger_helpers import rid

    export(ledger, bundle, run_id=rid(1))
    key = ledger.verifier().encode()
    store.close()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(
        bundle.read_text().replace('\\"name\\":\\"step2\\"', '\\"name\\":\\"stepX\\"')
    )
    assert tampered.read_text() != bundle.read_text()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    repo = Path(__file__).resolve().parents[3]
    import tomllib

    project = tomllib.loads((repo / "pyproject.toml").read_text())
    core = project["project"]["dependencies"]  # what `pip install flightlog` brings
    build = project["build-system"]["requires"]
    deps = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", *core, *build],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if deps.returncode != 0:
        pytest.fail(f"cannot install dependencies into a fresh venv: {deps.stderr[-500:]}")
    inst = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(repo)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert inst.returncode == 0, inst.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "bundle.json").write_bytes(bundle.read_bytes())
    (work / "tampered.json").write_bytes(tampered.read_bytes())
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work)}
    fl = venv / "bin" / "flightlog"
    ok = subprocess.run(
        [str(fl), "audit", "verify-bundle", "bundle.json", "--key", key],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("verified: 10 entries") and rid(1) in ok.stdout
    bad = subprocess.run(
        [str(fl), "audit", "verify-bundle", "tampered.json", "--key", key],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1 and "does not verify" in bad.stderr
    assert not any(p.suffix == ".db" for p in work.iterdir()), "verification created a store"
