"""Docs as tests: the example flightlog.toml in docs/alerting.md loads, and every response
command is documented there."""

from __future__ import annotations

import re
from pathlib import Path

from flightlog.config import parse_config
from flightlog.respond.config import respond_config
from flightlog.respond.owners import explain

DOC = Path(__file__).resolve().parents[3] / "docs" / "alerting.md"


def test_example_config_in_docs_is_valid() -> None:
    text = DOC.read_text()
    block = re.search(r"## A complete `flightlog.toml`\n\n```toml\n(.*?)```", text, re.S)
    assert block
    env = {
        "FLIGHTLOG_OPS_SLACK_URL": "https://hooks.slack.com/services/T/B/1",
        "FLIGHTLOG_CLAIMS_SLACK_URL": "https://hooks.slack.com/services/T/B/2",
        "FLIGHTLOG_SEARCH_SLACK_URL": "https://hooks.slack.com/services/T/B/3",
        "FLIGHTLOG_SMTP_PASSWORD": "pw",
        "FLIGHTLOG_PD_SEARCH": "k1",
        "FLIGHTLOG_PD_SEARCH_LEAD": "k2",
    }
    cfg = respond_config(parse_config(block.group(1)), environ=env)
    assert len(cfg.channels) == 7 and len(cfg.rules) == 4 and len(cfg.silences) == 1
    assert explain(cfg, workflow="claims-triage", step="search_policy").team == "search-team"
    assert (
        explain(cfg, workflow="billing", step="fetch", tool="vector_search").team == "search-team"
    )
    assert explain(cfg, workflow="billing").team == "platform"


def test_every_response_command_is_documented() -> None:
    text = DOC.read_text()
    for cmd in (
        "flightlog incidents",
        "flightlog incident show",
        "flightlog incident ack",
        "flightlog incident resolve",
        "flightlog alerts",
        "flightlog owners explain",
        "flightlog watch",
    ):
        assert cmd in text, cmd
