"""Owners, for the response layer: who is told (``flightlog.owners`` resolves who owns a
step or workflow, the same way for every part) and whose channels carry the alerts.

If an owner is not a configured team (an ``owner=`` given in code, say), alerts for it are
delivered through the catch-all team's channels (and say so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flightlog.errors import ConfigurationError
from flightlog.owners import OwnerQuery as OwnerQuery
from flightlog.owners import OwnerRule, resolve
from flightlog.owners import owner_query as owner_query
from flightlog.owners import step_owners as step_owners
from flightlog.owners import step_query as step_query
from flightlog.owners import with_owners as with_owners
from flightlog.respond.config import RespondConfig, Team


@dataclass
class OwnerMatch:
    """The answer to "who owns this?", with the reasoning."""

    query: OwnerQuery
    team: str
    source: str  # "code" | "rule"
    rule: OwnerRule | None
    matched: list[OwnerRule] = field(default_factory=list)  # every rule that matched, in order
    delivery_team: str | None = None  # the configured team whose channels carry the alerts

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": {k: v for k, v in vars(self.query).items() if v is not None},
            "team": self.team,
            "source": self.source,
            "rule": None
            if self.rule is None
            else {
                "number": self.rule.number,
                "line": self.rule.line,
                "description": self.rule.describe(),
            },
            "matched_rules": [r.number for r in self.matched],
            "delivery_team": self.delivery_team,
        }

    def explain(self) -> str:
        q = self.query
        subject = (
            f"workflow {q.workflow!r}"
            + (f", step {q.step!r}" if q.step else "")
            + (f", agent {q.agent!r}" if q.agent else "")
            + (f", tool {q.tool!r}" if q.tool else "")
        )
        lines = [f"{subject}: owned by {self.team}"]
        if self.source == "code":
            lines.append(f"  owner={self.team!r} given in code takes precedence over the rules")
        elif self.rule is not None:
            where = f" (line {self.rule.line})" if self.rule.line else ""
            lines.append(f"  matched {self.rule.describe()}{where}; last matching rule wins")
        # An owner from code overrides every matching rule; a rule, the ones before it.
        overridden = self.matched if self.source == "code" else self.matched[:-1]
        if overridden:
            earlier = ", ".join(str(r.number) for r in overridden)
            lines.append(f"  also matched (overridden): rule(s) {earlier}")
        if self.delivery_team and self.delivery_team != self.team:
            lines.append(
                f"  {self.team!r} is not a configured team: alerts go to the channels of "
                f"{self.delivery_team!r} (the catch-all owner)"
            )
        return "\n".join(lines)


def catch_all_team(config: RespondConfig) -> str:
    for rule in config.rules:
        if rule.is_catch_all:
            return rule.team
    raise ConfigurationError("no catch-all ownership rule configured; add [[owners]] team = ...")


def resolve_owner(config: RespondConfig, query: OwnerQuery) -> OwnerMatch:
    """Who owns what ``query`` describes (``flightlog.owners.resolve``), and which
    configured team's channels carry its alerts."""
    found = resolve(config.rules, query)
    team, source, rule, matched = found.team, found.source, found.rule, found.matched
    delivery = team if team in config.teams else catch_all_team(config)
    return OwnerMatch(query, team, source, rule, matched, delivery)


def explain(
    config: RespondConfig,
    *,
    workflow: str,
    step: str | None = None,
    agent: str | None = None,
    tool: str | None = None,
    code_owner: str | None = None,
) -> OwnerMatch:
    """``flightlog owners explain``: which rule (or code owner) decides the owner."""
    if not config.rules:
        raise ConfigurationError(
            "no ownership rules configured; add [[owners]] sections to flightlog.toml "
            "(see docs/alerting.md)"
        )
    return resolve_owner(config, OwnerQuery(workflow, step, agent, tool, code_owner))


def team_of(config: RespondConfig, name: str) -> Team:
    """The configured team that carries alerts for owner ``name``."""
    return config.teams.get(name) or config.teams[catch_all_team(config)]
