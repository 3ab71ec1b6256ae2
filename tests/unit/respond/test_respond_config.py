"""flightlog.toml for the response layer: valid configs load; bad ones are rejected at start
with a message naming the file and line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightlog.config import load_config, parse_config
from flightlog.errors import ConfigurationError
from flightlog.respond.channels import Channel, _types, register
from flightlog.respond.config import (
    NS,
    ChannelConfig,
    Matcher,
    Pattern,
    load_respond_config,
    parse_duration,
    redact,
)

GOOD = """\
[respond]
auto_resolve_after = 5

[teams.platform]
channels = ["ops"]

[teams.search-team]
channels = ["ops"]
pager = ["pd"]
escalation = [{ after = "15m", channels = ["ops"] }]

[[owners]]
team = "platform"

[[owners]]
workflow = "claims-*"
step = "search_*"
team = "search-team"

[channels.ops]
type = "webhook"
url = "https://hooks.example.test/services/abc/SECRET"

[channels.pd]
type = "pagerduty"
routing_key = "R0UT1NG"

[route]
group_by = ["workflow"]
group_wait = "10s"

[[route.routes]]
matchers = ['severity="critical"', 'workflow=~"claims-.*"']
receiver = "ops"
continue = true
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "flightlog.toml"
    p.write_text(text)
    return p


def line_of(text: str, needle: str, nth: int = 1) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[nth - 1]


def test_good_config_loads(tmp_path: Path) -> None:
    cfg = load_respond_config(write(tmp_path, GOOD), environ={})
    assert cfg.auto_resolve_after == 5
    assert cfg.teams["search-team"].pager == ("pd",)
    assert cfg.teams["search-team"].escalation[0].after_ns == 15 * 60 * NS
    assert [r.team for r in cfg.rules] == ["platform", "search-team"]
    assert cfg.rules[1].line == line_of(GOOD, "[[owners]]", 2)
    assert cfg.route is not None and cfg.route.group_wait_ns == 10 * NS
    child = cfg.route.routes[0]
    assert child.continue_ and child.channels == ("ops",) and child.group_by == ("workflow",)
    assert child.group_wait_ns == 10 * NS  # inherited
    assert cfg.channels["pd"].secrets["routing_key"] == "R0UT1NG"
    assert "SECRET" not in cfg.channels["ops"].describe()


def _error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigurationError) as exc:
        load_respond_config(write(tmp_path, text), environ=env or {})
    return str(exc.value)


def test_unknown_team_names_the_line(tmp_path: Path) -> None:
    text = GOOD.replace('team = "search-team"', 'team = "serch-team"')
    msg = _error(tmp_path, text)
    assert f"flightlog.toml line {line_of(text, 'serch-team')}:" in msg
    assert "unknown team 'serch-team'" in msg and "define [teams.serch-team]" in msg


def test_no_catch_all_names_the_fix(tmp_path: Path) -> None:
    text = GOOD.replace('[[owners]]\nteam = "platform"\n\n', "")
    msg = _error(tmp_path, text)
    assert f"line {line_of(text, '[[owners]]')}:" in msg
    assert "no catch-all ownership rule" in msg and 'team = "platform"' in msg


def test_malformed_pattern_names_the_line(tmp_path: Path) -> None:
    text = GOOD.replace('step = "search_*"', 'step = "search_[*"')
    msg = _error(tmp_path, text)
    assert f"line {line_of(text, 'search_[*')}:" in msg and "malformed pattern" in msg
    text = GOOD.replace('step = "search_*"', 'step = "re:search_(("')
    msg = _error(tmp_path, text)
    assert f"line {line_of(text, 're:search_')}:" in msg and "malformed regular expression" in msg


def test_malformed_matcher_names_the_line(tmp_path: Path) -> None:
    text = GOOD.replace("'severity=\"critical\"'", "'severity~critical'")
    msg = _error(tmp_path, text)
    assert f"line {line_of(text, 'severity~critical')}:" in msg and "malformed matcher" in msg
    text = GOOD.replace("'severity=\"critical\"'", "'sevrity=\"critical\"'")
    assert "unknown label 'sevrity'" in _error(tmp_path, text)


def test_missing_channel_secret_names_the_line_and_env_var(tmp_path: Path) -> None:
    text = GOOD.replace('routing_key = "R0UT1NG"\n', "")
    msg = _error(tmp_path, text)
    assert f"line {line_of(text, '[channels.pd]')}:" in msg
    assert "has no routing_key" in msg and "FLIGHTLOG_CHANNEL_PD_ROUTING_KEY" in msg
    # ... and the environment supplies it
    cfg = load_respond_config(
        write(tmp_path, text), environ={"FLIGHTLOG_CHANNEL_PD_ROUTING_KEY": "from-env"}
    )
    assert cfg.channels["pd"].secrets["routing_key"] == "from-env"


def test_secret_from_named_env_var_and_never_in_messages(tmp_path: Path) -> None:
    text = GOOD.replace(
        'url = "https://hooks.example.test/services/abc/SECRET"', 'url_env = "FLIGHTLOG_OPS_HOOK"'
    )
    msg = _error(tmp_path, text)
    assert "FLIGHTLOG_CHANNEL_OPS_URL" in msg and "$FLIGHTLOG_OPS_HOOK" in msg
    cfg = load_respond_config(
        write(tmp_path, text), environ={"FLIGHTLOG_OPS_HOOK": "http://127.0.0.1:1/x/TOKEN"}
    )
    assert cfg.channels["ops"].secrets["url"] == "http://127.0.0.1:1/x/TOKEN"
    bad = text.replace('url_env = "FLIGHTLOG_OPS_HOOK"', 'url = "ftp://host/TOKEN"')
    msg = _error(tmp_path, bad)
    assert "TOKEN" not in msg and "http://" in msg


def test_unknown_channel_and_setting(tmp_path: Path) -> None:
    msg = _error(tmp_path, GOOD.replace('pager = ["pd"]', 'pager = ["pdx"]'))
    assert "unknown channel 'pdx'" in msg and f"line {line_of(GOOD, 'pager =')}" in msg
    msg = _error(tmp_path, GOOD.replace("auto_resolve_after = 5", "auto_resolve = 5"))
    assert "line 2:" in msg and "unknown setting 'auto_resolve'" in msg


def test_invalid_toml_is_reported() -> None:
    with pytest.raises(ConfigurationError, match="not valid TOML.*line 2"):
        parse_config("[a]\nb = \n")


def test_env_overrides_and_missing_explicit_file(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    cfg = load_config(
        p,
        environ={
            "FLIGHTLOG__RESPOND__AUTO_RESOLVE_AFTER": "7",
            "FLIGHTLOG__STORE__URL": "sqlite:///x.db",
        },
    )
    assert cfg.data["respond"]["auto_resolve_after"] == 7
    assert cfg.data["store"]["url"] == "sqlite:///x.db"
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_line_index_handles_arrays_of_tables_and_dotted_keys() -> None:
    text = "[a]\nx = 1\n\n[[b]]\ny = 2\n[[b]]\ny = 3\n[b.c]\nz = 4\nd.e = 5\n"
    cfg = parse_config(text)
    assert cfg.line_of("a", "x") == 2
    assert cfg.line_of("b", 0, "y") == 5
    assert cfg.line_of("b", 1, "y") == 7
    assert cfg.line_of("b", 1, "c", "z") == 9
    assert cfg.line_of("b", 1, "c", "d", "e") == 10
    assert cfg.line_of("b", 1, "missing") == 6


def test_durations_patterns_matchers_redaction() -> None:
    assert parse_duration("250ms", "x") == 250_000_000
    assert parse_duration("2h", "x") == 7200 * NS
    assert parse_duration(3, "x") == 3 * NS
    with pytest.raises(ConfigurationError):
        parse_duration("soon", "x")
    assert Pattern.parse("claims-*", "x").matches("claims-triage")
    assert not Pattern.parse("claims-*", "x").matches("claim")
    assert Pattern.parse("[ab]x", "x").matches("bx")
    m = Matcher.parse('workflow=~"claims-.*"', "x")
    assert m.matches({"workflow": "claims-a"}) and not m.matches({"workflow": "x-claims-a"})
    assert Matcher.parse("team!=platform", "x").matches({"team": "search"})
    assert redact("https://hooks.slack.com/services/T/B/XYZ") == "https://hooks.slack.com/***"
    assert redact("http://user:pw@host:1/p") == "http://***@host:1/***"


class _Jsonl(Channel):
    name = "jsonl-test"
    settings = frozenset({"path"})
    secrets = ("token",)

    def check(self, name: str, settings: dict[str, Any], secrets: dict[str, str]) -> str | None:
        return None if settings.get("path") else f"channel {name!r} needs path"

    def describe(self, channel: ChannelConfig) -> str:
        return f"jsonl {channel.settings['path']}"


PLUGGED = """\
[teams.platform]
channels = ["file"]

[[owners]]
team = "platform"

[channels.file]
type = "jsonl-test"
path = "/tmp/alerts.jsonl"
timeout = "3s"
"""


@pytest.fixture
def plugin() -> Iterator[None]:
    register(_Jsonl())
    yield
    _types.pop("jsonl-test", None)


def test_a_plug_in_channel_type_is_configured_by_the_keys_it_declares(
    tmp_path: Path, plugin: None
) -> None:
    env = {"FLIGHTLOG_CHANNEL_FILE_TOKEN": "t0k"}
    cfg = load_respond_config(write(tmp_path, PLUGGED), environ=env)
    ch = cfg.channels["file"]
    assert (ch.type, ch.settings["path"], ch.timeout_s) == ("jsonl-test", "/tmp/alerts.jsonl", 3)
    assert ch.secrets == {"token": "t0k"} and ch.describe() == "jsonl /tmp/alerts.jsonl"
    msg = _error(tmp_path, PLUGGED.replace("path =", "paht ="), env)
    assert f"line {line_of(PLUGGED, 'path =')}: unknown setting 'paht' in [channels.file]" in msg
    msg = _error(tmp_path, PLUGGED.replace('path = "/tmp/alerts.jsonl"\n', ""), env)
    assert f"line {line_of(PLUGGED, '[channels.file]')}: channel 'file' needs path" in msg
    msg = _error(tmp_path, PLUGGED, {})
    assert "has no token" in msg and "FLIGHTLOG_CHANNEL_FILE_TOKEN" in msg
    msg = _error(tmp_path, PLUGGED.replace('"jsonl-test"', '"pigeon"'), env)
    assert f"line {line_of(PLUGGED, 'type =')}: channel 'file' has unknown channel type" in msg
