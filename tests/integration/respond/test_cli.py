"""The incident lifecycle from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import flightlog

from .conftest import Receiver, claims_run, write_config

ROUTE = 'group_wait = "0s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "flightlog", *args], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def test_incident_lifecycle_from_the_cli(
    recorded_both: str, receiver: Receiver, tmp_path: Path
) -> None:
    recorded = recorded_both
    config = str(write_config(tmp_path / "f.toml", receiver, route=ROUTE))
    rid = claims_run("flooded basement", broken=True)
    claims_run("flooded attic", broken=True)
    flightlog.flush()
    out = cli("watch", "--once", "--db", recorded, "--config", config).stdout
    assert "incidents touched [1]" in out and "delivered 3" in out

    listed = json.loads(cli("incidents", "--db", recorded, "--json").stdout)
    assert len(listed) == 1
    inc = listed[0]
    assert (inc["id"], inc["status"], inc["run_count"]) == (1, "triggered", 2)
    assert inc["root_cause_step"] == "search_policy" and inc["failure_step"] == "validate_claim"
    assert inc["root_cause_team"] == "search-team" and inc["workflow_team"] == "claims-team"
    assert inc["first_run_id"] == rid
    text = cli("incidents", "--db", recorded).stdout
    assert "#1" in text and "triggered" in text

    shown = cli("incident", "show", "1", "--db", recorded).stdout
    assert "paged: search-team (root-cause owner)" in shown
    assert "flightlog report " in shown and "notification.delivered" in shown

    out = cli("incident", "ack", "1", "--by", "alice", "--db", recorded, "--config", config)
    assert "incident #1 acknowledged by alice" in out.stdout
    again = cli("incident", "ack", "#1", "--db", recorded, "--config", config, ok=False)
    assert again.returncode == 1 and "already acknowledged" in again.stderr
    assert "Traceback" not in again.stderr
    cli(
        "incident",
        "resolve",
        "INC-1",
        "--by",
        "bob",
        "--note",
        "reindexed",
        "--db",
        recorded,
        "--config",
        config,
    )
    pd = [r.body for r in receiver.delivered("/v2/enqueue")]
    assert [e["event_action"] for e in pd] == ["trigger", "acknowledge", "resolve"]
    assert len({e["dedup_key"] for e in pd}) == 1

    detail = json.loads(cli("incident", "show", "1", "--db", recorded, "--json").stdout)
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[0] == "opened" and "acknowledged" in kinds and "resolved" in kinds
    assert detail["resolved_by"] == "bob"
    resolved = next(e for e in detail["timeline"] if e["kind"] == "resolved")
    assert resolved["detail"]["note"] == "reindexed"

    alerts = json.loads(cli("alerts", "--db", recorded, "--json").stdout)
    assert {a["status"] for a in alerts} == {"delivered"}
    assert {(a["channel"], a["action"]) for a in alerts if a["channel"] == "search-pd"} == {
        ("search-pd", "trigger"),
        ("search-pd", "acknowledge"),
        ("search-pd", "resolve"),
    }
    assert all("routing_key" not in json.dumps(a["body"]) for a in alerts)
    assert "delivered" in cli("alerts", "--db", recorded).stdout

    missing = cli("incident", "show", "99", "--db", recorded, ok=False)
    assert missing.returncode == 1 and "no incident #99" in missing.stderr


def test_watch_without_owners_or_with_a_bad_file_says_so(recorded: str, tmp_path: Path) -> None:
    """A failed run waits in the store; `flightlog watch` with no flightlog.toml, or one
    without [[owners]], names what is missing (it used to log a traceback, then fail with
    "no ownership rule matches"); a mistake in any section of the file names its line."""
    import os

    claims_run("flooded basement", broken=True)
    flightlog.flush()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")}

    def watch(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "flightlog", "watch", "--once", "--db", recorded, *extra]
        return subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env)

    none = watch()
    assert none.returncode == 1 and "Traceback" not in none.stderr
    assert "no alerting configured (no flightlog.toml here" in none.stderr
    assert "[[owners]]" in none.stderr and "--config" in none.stderr
    privacy_only = tmp_path / "privacy.toml"
    privacy_only.write_text('[privacy]\naction = "hash"\n')
    p = watch("--config", str(privacy_only))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"{privacy_only} has no [[owners]] rules" in p.stderr
    typo = tmp_path / "typo.toml"
    typo.write_text('[[slo]]\nworkflow = "claims-triage"\nobjective = 0.99\n')
    p = watch("--config", str(typo))
    assert p.returncode == 1 and "line 3: unknown setting 'objective' in [[slo]]" in p.stderr
    listed = cli("incidents", "--db", recorded).stdout
    assert "#1" not in listed  # nothing was opened on the way
    for command in ("incidents", "alerts"):  # --limit -1 listed everything, as SQL reads it
        bad = cli(command, "--db", recorded, "--limit", "-1", ok=False)
        assert bad.returncode == 2 and "not in the range 1<=x<=100000" in bad.stderr


def test_a_long_running_watch_says_what_it_watches(
    recorded: str, receiver: Receiver, tmp_path: Path
) -> None:
    """Without --once, watch names the store, the interval and the file before going quiet."""
    config = str(write_config(tmp_path / "f.toml", receiver, route=ROUTE))
    argv = [sys.executable, "-m", "flightlog", "watch", "--db", recorded, "--config", config]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert first.startswith("flightlog watch: every 5 s, runs that ended in ")
    assert recorded in first and f"per {config}" in first and "(Ctrl-C stops)" in first


def test_run_end_hook_runs_the_engine_when_configured(
    recorded: str, receiver: Receiver, tmp_path: Path, monkeypatch: object
) -> None:
    """The SDK's writer (and the server, on ingestion) calls the same engine through
    ``flightlog.pipeline``; without a config it does nothing."""
    import pytest

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    claims_run("before any config", broken=True)
    flightlog.flush()
    assert receiver.requests == []
    config = write_config(tmp_path / "f.toml", receiver, route=ROUTE)
    mp.setenv("FLIGHTLOG_CONFIG", str(config))
    claims_run("flooded basement", broken=True)
    flightlog.flush()
    (page,) = receiver.delivered("/v2/enqueue")
    assert page.body["payload"]["component"] == "search_policy"
    assert page.body["payload"]["custom_details"]["affected_runs"] == "1"


def test_transitions_and_sent_alerts_are_in_the_audit_ledger(
    recorded: str, receiver: Receiver, tmp_path: Path
) -> None:
    config = str(write_config(tmp_path / "f.toml", receiver, route=ROUTE))
    claims_run("flooded basement", broken=True)
    flightlog.flush()
    cli("watch", "--once", "--db", recorded, "--config", config)
    cli("incident", "resolve", "1", "--db", recorded, "--config", config)
    store = flightlog.open_store(recorded)
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT kind, record_id FROM ledger_entries "
            "WHERE kind IN ('incident.transition', 'alert.sent') ORDER BY seq"
        )
    assert ("incident.transition", "incident-1-triggered") in rows
    assert ("incident.transition", "incident-1-resolved") in rows
    sent = [r for r in rows if r[0] == "alert.sent"]
    assert len(sent) == 4  # page, Slack, webhook, PagerDuty resolve
    assert {r[1] for r in sent} == {
        e["id"] for e in json.loads(cli("alerts", "--db", recorded, "--json").stdout)
    }
    verify = cli("audit", "verify", "--db", recorded, ok=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
