"""Done-when: a failure in the demo workflow produces exactly one alert to the right owner,
with the attribution in it, through each channel (webhook, Slack, PagerDuty, email)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import flightlog
from flightlog import demo
from flightlog.config import parse_config
from flightlog.forensics import why
from flightlog.respond.config import respond_config
from flightlog.respond.demo import DEMO_TEAMS
from flightlog.respond.engine import Engine

from .conftest import Receiver


def config_for(owner: str, receiver: Receiver, smtp_port: int) -> str:
    others = [t for t in DEMO_TEAMS if t != owner]
    text = f"""
[teams.{owner}]
channels = ["hook", "slack", "pd", "mail"]
[[owners]]
team = "{others[0]}"
[channels.hook]
type = "webhook"
url = "{receiver.url("/hook")}"
[channels.slack]
type = "slack"
url = "{receiver.url("/slack")}"
[channels.pd]
type = "pagerduty"
url = "{receiver.url("/pd")}"
routing_key = "demo-routing-key"
[channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
from = "flightlog@example.test"
to = ["{owner}@example.test"]
[channels.others]
type = "webhook"
url = "{receiver.url("/others")}"
[route]
group_wait = "0s"
"""
    for t in others:
        text += f'[teams.{t}]\nchannels = ["others"]\n'
    return text


def test_demo_failure_reaches_the_root_cause_owner_once_per_channel(
    tmp_path: Path, receiver: Receiver, smtp: Any
) -> None:
    box, port = smtp
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    try:
        result = demo.run_demo(url, home=tmp_path / "demo")
    finally:
        flightlog.shutdown()
    assert result.failed_run_id
    attribution = why(result.store, result.failed_run_id)
    assert attribution.root_cause is not None
    owner = attribution.root_cause.owner
    assert owner in DEMO_TEAMS
    cfg = respond_config(parse_config(config_for(owner, receiver, port)), environ={})
    engine = Engine(result.store, cfg)
    engine.process_runs(engine.pending_runs())
    engine.tick()
    rc = attribution.root_cause.name
    for path in ("/hook", "/slack", "/pd"):
        (msg,) = receiver.all(path)
        text = str(msg.body)
        assert "failed at step 4 of 7 (validate_claim)" in text and rc in text, path
    assert receiver.all("/pd")[0].body["event_action"] == "trigger"
    (mail,) = box.messages
    body = mail.get_payload(decode=True).decode()
    assert mail["To"] == f"{owner}@example.test" and rc in body
    assert "failed at step 4 of 7 (validate_claim)" in body
    # the workflow's owner (claims-team) is notified separately, unless it owns the root cause
    others = receiver.all("/others")
    assert len(others) == (0 if owner == "claims-team" else 1)


def test_flightlog_demo_prints_who_is_paged(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flightlog", "demo", "--db", f"sqlite:///{tmp_path / 'd.db'}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert "Who is told" in out
    assert "PAGED as owner of the root-cause step (incident #1, 1 run(s) affected)" in out
    assert "failed at step 4 of 7 (validate_claim)" in out
