"""flightlog.owners: the one owner resolution, below attribution and the response layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightlog.config import parse_config
from flightlog.errors import ConfigurationError
from flightlog.model import Step
from flightlog.owners import owner_query, owner_rules, resolve, step_owners, step_query
from flightlog.respond.config import respond_config
from flightlog.respond.owners import resolve_owner

CONFIG = """\
[teams.platform]
[teams.search-team]

[[owners]]
team = "platform"

[[owners]]
tool = "search_*"
team = "search-team"
"""


def test_a_tool_step_is_asked_about_as_its_tool() -> None:
    rules = owner_rules(parse_config(CONFIG))
    as_tool = owner_query("claims", step="search_policy", kind="tool")
    as_llm = owner_query("claims", step="search_policy", kind="llm")
    assert as_tool.tool == "search_policy" and as_llm.tool is None
    assert resolve(rules, as_tool).team == "search-team"
    assert resolve(rules, as_llm).team == "platform"
    step = Step(run_id="r", id="s1", name="search_policy", kind="tool", index=1, started_ns=0)
    assert step_query("claims", step) == as_tool
    assert step_owners("claims", [step], rules) == {"s1": "search-team"}
    # the response layer answers with the same rules
    assert resolve_owner(respond_config(parse_config(CONFIG)), as_tool).team == "search-team"


def test_rules_are_checked_once_and_errors_name_the_line() -> None:
    cfg = parse_config(CONFIG)
    assert owner_rules(cfg) is owner_rules(cfg)
    bad = parse_config(CONFIG.replace('team = "search-team"', 'team = "serch"'), Path("f.toml"))
    with pytest.raises(ConfigurationError, match=r"f.toml line 9: ownership rule 2 names unknown"):
        owner_rules(bad)
    with pytest.raises(ConfigurationError, match="no catch-all"):
        owner_rules(parse_config(CONFIG.replace('[[owners]]\nteam = "platform"\n', "")))
