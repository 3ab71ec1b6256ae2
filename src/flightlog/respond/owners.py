"""Who owns a step or a workflow: owners given in code, else ``[[owners]]`` rules.

CODEOWNERS semantics: rules are read in order and the *last* rule that matches wins, so a
catch-all rule comes first and more specific rules after it. A rule matches when every
pattern it gives matches the corresponding name; a rule that names a step, agent or tool
does not match a question about the workflow as a whole. ``tool`` patterns match the name
of a step whose kind is ``tool``.

An ``owner=`` given in code (on ``@flightlog.step`` or ``flightlog.run``) takes precedence
over every rule. If that owner is not a configured team, alerts for it are delivered through
the catch-all team's channels (and say so).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flightlog.errors import ConfigurationError
from flightlog.respond.config import OwnerRule, RespondConfig, Team


@dataclass(frozen=True)
class OwnerQuery:
    workflow: str
    step: str | None = None
    agent: str | None = None
    tool: str | None = None
    code_owner: str | None = None


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
        if self.matched and len(self.matched) > 1:
            earlier = ", ".join(str(r.number) for r in self.matched[:-1])
            lines.append(f"  also matched (overridden): rule(s) {earlier}")
        if self.delivery_team and self.delivery_team != self.team:
            lines.append(
                f"  {self.team!r} is not a configured team: alerts go to the channels of "
                f"{self.delivery_team!r} (the catch-all owner)"
            )
        return "\n".join(lines)


def _rule_matches(rule: OwnerRule, q: OwnerQuery) -> bool:
    for pattern, value in (
        (rule.workflow, q.workflow),
        (rule.step, q.step),
        (rule.agent, q.agent),
        (rule.tool, q.tool),
    ):
        if pattern is None:
            continue
        if value is None:
            if pattern.is_wildcard:
                continue
            return False
        if not pattern.matches(value):
            return False
    return True


def catch_all_team(config: RespondConfig) -> str:
    for rule in config.rules:
        if rule.is_catch_all:
            return rule.team
    raise ConfigurationError("no catch-all ownership rule configured; add [[owners]] team = ...")


def resolve_owner(config: RespondConfig, query: OwnerQuery) -> OwnerMatch:
    """Who owns what ``query`` describes: the code owner, else the last matching rule."""
    matched = [r for r in config.rules if _rule_matches(r, query)]
    if query.code_owner:
        team, source, rule = query.code_owner, "code", None
    elif matched:
        team, source, rule = matched[-1].team, "rule", matched[-1]
    else:
        raise ConfigurationError(
            "no ownership rule matches and there is no catch-all; add [[owners]] team = ..."
        )
    delivery = team if team in config.teams else catch_all_team(config)
    return OwnerMatch(query, team, source, rule, matched, delivery)


def owner_query(
    workflow: str,
    *,
    step: str | None = None,
    agent: str | None = None,
    kind: str | None = None,
    code_owner: str | None = None,
) -> OwnerQuery:
    """The ownership question for step ``step`` (of ``kind``) of ``workflow``: a ``tool``
    step is also asked about as the tool of that name, so ``tool =`` rules match it. The one
    way every part asks (alerts, ``why``, ``show``, the web UI, postmortems, the reliability
    board, SLO alerts, drills), so they all name the same owner."""
    return OwnerQuery(
        workflow,
        step=step,
        agent=agent,
        tool=step if kind == "tool" else None,
        code_owner=code_owner,
    )


def step_query(workflow: str, step: Any) -> OwnerQuery:
    """The ownership question for a recorded step (``owner_query`` with its name, agent,
    kind and the owner given in code)."""
    return owner_query(
        workflow, step=step.name, agent=step.agent, kind=step.kind, code_owner=step.owner
    )


def step_owners(
    workflow: str, steps: Iterable[Any], config: RespondConfig | None = None
) -> dict[str, str]:
    """``{step id: owner}`` for ``steps``: the owner given in code, else the team the
    ``[[owners]]`` rules of ``flightlog.toml`` name (ingested runs carry no code owners).
    Without a configuration, or with an invalid one, only the code owners: reading a run
    must not fail on ownership."""
    steps = list(steps)
    out = {s.id: s.owner for s in steps if s.owner}
    try:
        if config is None:
            from flightlog.respond.config import load_respond_config

            config = load_respond_config()
        if not config.rules:
            return out
        for s in steps:
            if s.id not in out:
                out[s.id] = resolve_owner(config, step_query(workflow, s)).team
    except ConfigurationError:
        return out
    return out


def with_owners(record: Any) -> Any:
    """``record`` (a ``RunRecord`` as read) with each step's owner filled in by
    ``step_owners`` where none was recorded; for display only, never written back."""
    owners = step_owners(record.run.workflow, record.steps)
    for s in record.steps:
        if not s.owner and s.id in owners:
            s.owner = owners[s.id]
    return record


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
