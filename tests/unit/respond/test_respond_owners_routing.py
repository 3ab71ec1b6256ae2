"""Ownership (CODEOWNERS semantics) and the routing tree (Alertmanager semantics)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flightlog.config import parse_config
from flightlog.respond.config import NS, respond_config
from flightlog.respond.owners import explain
from flightlog.respond.routing import (
    AlertFacts,
    GroupState,
    flush_due,
    inhibited_by,
    match_routes,
)

CONFIG = """\
[teams.platform]
channels = ["hook"]
[teams.claims]
channels = ["hook"]
[teams.search]
channels = ["hook"]
[teams.llm]
channels = ["hook"]

[[owners]]
team = "platform"
[[owners]]
workflow = "claims-*"
team = "claims"
[[owners]]
workflow = "claims-*"
step = "search_*"
team = "search"
[[owners]]
agent = "planner"
team = "llm"
[[owners]]
tool = "web_search"
team = "search"

[channels.hook]
type = "webhook"
url = "http://127.0.0.1:9/hook"
[channels.other]
type = "webhook"
url = "http://127.0.0.1:9/other"

[route]
group_wait = "30s"
[[route.routes]]
matchers = ['team="search"']
receiver = "other"
continue = true
[[route.routes]]
matchers = ['workflow=~"claims-.*"']
group_interval = "1m"
[[route.routes.routes]]
matchers = ['severity="critical"']
receiver = "other"
[[route.routes]]
matchers = ['workflow=~".*"']
receiver = "other"
"""


def cfg():  # type: ignore[no-untyped-def]
    return respond_config(parse_config(CONFIG, Path("flightlog.toml")), environ={})


def test_last_matching_rule_wins() -> None:
    c = cfg()
    m = explain(c, workflow="claims-triage", step="search_policy")
    assert (m.team, m.rule.number if m.rule else None) == ("search", 3)
    assert [r.number for r in m.matched] == [1, 2, 3]
    assert "line 15" in m.explain() and "also matched (overridden): rule(s) 1, 2" in m.explain()
    # a later agent rule overrides the step rule
    m = explain(c, workflow="claims-triage", step="search_policy", agent="planner")
    assert m.team == "llm"
    # the workflow as a whole: step/agent rules do not apply
    assert explain(c, workflow="claims-triage").team == "claims"
    assert explain(c, workflow="billing").team == "platform"
    assert explain(c, workflow="billing", step="fetch", tool="web_search").team == "search"


def test_code_owner_takes_precedence() -> None:
    m = explain(cfg(), workflow="claims-triage", step="search_policy", code_owner="retrieval-sre")
    assert m.source == "code" and m.team == "retrieval-sre"
    assert m.delivery_team == "platform"  # not a configured team: the catch-all's channels
    assert "given in code takes precedence" in m.explain()


def test_owners_explain_cli(tmp_path: Path) -> None:
    p = tmp_path / "flightlog.toml"
    p.write_text(CONFIG)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flightlog",
            "owners",
            "explain",
            "--workflow",
            "claims-triage",
            "--step",
            "search_policy",
            "--config",
            str(p),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "owned by search" in out and "rule 3" in out and "line 15" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(
        CONFIG.replace('team = "search"\n[[owners]]\nagent', 'team = "serch"\n[[owners]]\nagent')
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flightlog",
            "owners",
            "explain",
            "--workflow",
            "w",
            "--config",
            str(bad),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "line 18" in r.stderr and "unknown team 'serch'" in r.stderr


def test_routing_tree_first_match_continue_and_nesting() -> None:
    root = cfg().route
    assert root is not None
    labels = {"workflow": "claims-triage", "team": "search", "severity": "error"}
    ids = [r.id for r in match_routes(root, labels)]
    assert ids == ["root.0", "root.1"]  # continue=true on the first; the second stops
    labels["severity"] = "critical"
    assert [r.id for r in match_routes(root, labels)] == ["root.0", "root.1.0"]
    nested = match_routes(root, labels)[1]
    assert nested.group_interval_ns == 60 * NS and nested.group_wait_ns == 30 * NS
    labels = {"workflow": "billing", "team": "platform"}
    assert [r.id for r in match_routes(root, labels)] == ["root.2"]


def test_causal_inhibition() -> None:
    chain = ("search_policy", "assess", "validate_claim")
    upstream = AlertFacts(
        1, "root_cause", {"workflow": "w", "step": "search_policy"}, "triggered", chain
    )
    symptom = AlertFacts(
        2,
        "root_cause",
        {"workflow": "w", "step": "validate_claim"},
        "triggered",
        ("validate_claim",),
    )
    other_wf = AlertFacts(
        3,
        "root_cause",
        {"workflow": "x", "step": "validate_claim"},
        "triggered",
        ("validate_claim",),
    )
    everyone = [upstream, symptom, other_wf]
    assert inhibited_by(symptom, everyone, []) is not None
    assert inhibited_by(upstream, everyone, []) is None
    assert inhibited_by(other_wf, everyone, []) is None
    resolved = AlertFacts(1, "root_cause", upstream.labels, "resolved", chain)
    assert inhibited_by(symptom, [resolved, symptom], []) is None
    assert inhibited_by(symptom, everyone, [], causal=False) is None


def test_group_timing() -> None:
    route = cfg().route
    assert route is not None
    s = GroupState(first_ns=0, last_sent_ns=None, last_hash=None)
    assert not flush_due(route, s, "h1", True, 29 * NS)
    assert flush_due(route, s, "h1", True, 30 * NS)
    s = GroupState(0, 30 * NS, "h1")
    assert not flush_due(route, s, "h2", True, 60 * NS)  # changed, but within group_interval
    assert flush_due(route, s, "h2", True, 330 * NS)
    assert not flush_due(route, s, "h1", True, 330 * NS)  # unchanged: wait for repeat
    assert flush_due(route, s, "h1", True, 30 * NS + route.repeat_interval_ns)
