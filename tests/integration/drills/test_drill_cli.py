"""Fire drills end to end: the claims demo workflow with faults injected, through the real
SDK writer, run-end pipeline, response engine and outbox, to a real webhook receiver and a
real SMTP server (aiosmtpd) on loopback. A passing drill exits 0 and is recorded in the
ledger; a drill whose expectation fails exits 1 and names the miss."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightlog import demo
from flightlog.app import open_store
from tests.conftest import run_cli
from tests.integration.respond.conftest import Mailbox, Receiver


def _toml(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"


def drill_file(path: Path, faults: list[dict[str, Any]], **drill: Any) -> Path:
    claims = demo.make_claims(6)[:6]
    lines = [
        "[drill]",
        'name = "claims demo"',
        'entry = "flightlog.demo:triage"',
        f"runs = {drill.get('runs', 4)}",
        "history = 6",
        "seed = 3",
        'within = "120s"',
        "inputs = [" + ", ".join(_toml(c) for c in claims) + "]",
    ]
    lines += [f"{k} = {_toml(v)}" for k, v in drill.items() if k != "runs"]
    for f in faults:
        lines += ["", "[[fault]]", *(f"{k} = {_toml(v)}" for k, v in f.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_passing_drill_with_local_receiver(tmp_path: Path) -> None:
    f = drill_file(
        tmp_path / "drill.toml",
        [
            {"step": "search_policy", "kind": "empty", "probability": 0.5},
            {"step": "price_claim", "kind": "exception"},
        ],
    )
    home = f"sqlite:///{tmp_path / 'home.db'}"
    proc = run_cli("drill", str(f), "--db", home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Drill 'claims demo': PASSED" in proc.stdout
    assert "detected: 100%   attributed to the injected step: 100%   owner paged: 100%" in (
        proc.stdout
    )
    store = open_store(home)
    try:
        from flightlog.reliability.drills import list_drills

        (rec,) = list_drills(store)
        assert rec["passed"] is True and rec["faults_injected"] == 4
        with store.read() as tx:
            kinds = [r[0] for r in tx.fetchall("SELECT kind FROM ledger_entries")]
        assert "drill" in kinds
    finally:
        store.close()
    verify = run_cli("audit", "verify", "--db", home)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_failing_expectation_exits_1_and_names_the_miss(tmp_path: Path) -> None:
    f = drill_file(
        tmp_path / "drill.toml",
        [{"step": "search_policy", "kind": "empty", "expect_owner": "platform-team"}],
        runs=2,
    )
    proc = run_cli("drill", str(f), "--db", f"sqlite:///{tmp_path / 'home.db'}", "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["passed"] is False
    assert data["detection_rate"] == 1.0 and data["attribution_accuracy"] == 1.0
    misses = [m for c in data["checks"] for m in c["misses"]]
    assert misses and all("'platform-team' was not paged" in m for m in misses)
    assert all("paged instead: search-team" in m for m in misses)


def test_a_fault_at_a_step_no_run_reached_fails_the_drill(tmp_path: Path) -> None:
    """A misspelt step name injects nothing; the drill used to pass on the other faults."""
    f = drill_file(
        tmp_path / "drill.toml",
        [
            {"step": "price_claim", "kind": "exception"},
            {"step": "search_polcy", "kind": "empty"},
        ],
        runs=2,
    )
    proc = run_cli("drill", str(f), "--db", f"sqlite:///{tmp_path / 'home.db'}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout and "Traceback" not in proc.stderr
    assert "fault 2 (empty at 'search_polcy') was never injected" in proc.stdout
    assert "steps recorded: " in proc.stdout and "search_policy" in proc.stdout


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def test_live_drill_pages_real_channels(tmp_path: Path, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    hooks = Receiver().start()
    try:
        cfg = tmp_path / "flightlog.toml"
        cfg.write_text(
            f"""
[respond]
auto_resolve_after = 100

[teams.platform]
channels = ["ops-hook"]

[teams.search-team]
pager = ["search-hook"]
channels = ["search-mail"]

[teams.claims-team]
channels = ["claims-mail"]

[[owners]]
team = "platform"

[channels.ops-hook]
type = "webhook"
url = "{hooks.url("/ops")}"

[channels.search-hook]
type = "webhook"
url = "{hooks.url("/search")}"

[channels.search-mail]
type = "email"
host = "127.0.0.1"
port = {port}
from = "flightlog@example.com"
to = ["search-oncall@example.com"]

[channels.claims-mail]
type = "email"
host = "127.0.0.1"
port = {port}
from = "flightlog@example.com"
to = ["claims@example.com"]

[route]
group_wait = "0s"
group_interval = "1s"
"""
        )
        f = drill_file(
            tmp_path / "drill.toml",
            [{"step": "search_policy", "kind": "empty"}],
            runs=2,
        )
        proc = run_cli(
            "drill",
            str(f),
            "--live",
            "--config",
            str(cfg),
            "--db",
            f"sqlite:///{tmp_path / 'h.db'}",
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "(live channels)" in proc.stdout
        pages = hooks.delivered("/search")
        assert pages and pages[0].body["alerts"][0]["labels"]["step"] == "search_policy"
        assert any("claims@example.com" in str(m["To"]) for m in box.messages)
    finally:
        hooks.stop()
