"""Who owns a step or a workflow: owners given in code, else ``[[owners]]`` rules of
``flightlog.toml``. One resolution, asked the same way by every part: attribution and
``why``, ``show``, the web UI, postmortems, incidents and alerts, the reliability board, SLO
alerts and drills.

CODEOWNERS semantics: rules are read in order and the *last* rule that matches wins, so a
catch-all rule comes first and more specific rules after it. A rule matches when every
pattern it gives matches the corresponding name; a rule that names a step, agent or tool
does not match a question about the workflow as a whole. ``tool`` patterns match the name
of a step whose kind is ``tool`` (``owner_query`` asks about a tool step as that tool too).

An ``owner=`` given in code (on ``@flightlog.step`` or ``flightlog.run``) takes precedence
over every rule. Where alerts for an owner go (its team's channels) is the response layer's
part: ``flightlog.respond.owners``.

In the base layer (it reads only the configuration), so that attribution and postmortems
below the response layer name owners exactly as alerts do.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from flightlog.config import Config, Section, load_config
from flightlog.errors import ConfigurationError, InputError
from flightlog.model import RunRecord, Step


class Pattern:
    """A name pattern: a glob (``claims-*``, ``search_?``, ``[ab]*``) or ``re:REGEX``.

    Globs are case-sensitive and match the whole name. (A plain class, not a dataclass:
    msgspec reads it from a string through ``from_toml``.)
    """

    __slots__ = ("regex", "text")

    def __init__(self, text: str, regex: re.Pattern[str]) -> None:
        self.text = text
        self.regex = regex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"

    @classmethod
    def from_toml(cls, text: Any) -> Pattern:
        if not isinstance(text, str) or not text.strip():
            raise InputError(
                f'a pattern must be a non-empty string such as "claims-*", got {text!r}'
            )
        if text.startswith("re:"):
            try:
                return cls(text, re.compile(text[3:]))
            except re.error as exc:
                raise InputError(
                    f"malformed regular expression {text[3:]!r} ({exc}); fix it or "
                    'use a glob such as "search_*"'
                ) from None
        i = 0
        while i < len(text):
            if text[i] == "[":
                start = i + 1
                if text[start : start + 1] == "!":
                    start += 1
                close = text.find("]", start + 1 if text[start : start + 1] == "]" else start)
                if close == -1:
                    raise InputError(
                        f"malformed pattern {text!r}: '[' at position {i + 1} is never "
                        "closed; close the character class, or write [[] for a literal '['"
                    )
                i = close
            i += 1
        return cls(text, re.compile(fnmatch.translate(text)))

    @classmethod
    def parse(cls, text: Any, where: str) -> Pattern:
        try:
            return cls.from_toml(text)
        except InputError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None

    def matches(self, name: str | None) -> bool:
        return name is not None and self.regex.fullmatch(name) is not None

    @property
    def is_wildcard(self) -> bool:
        return self.text in ("*", "re:.*")


class OwnerSettings(Section, frozen=True):
    """One ``[[owners]]`` rule, as written."""

    team: str = ""
    workflow: Pattern | None = None
    agent: Pattern | None = None
    step: Pattern | None = None
    tool: Pattern | None = None


class OwnersFile(msgspec.Struct, kw_only=True, frozen=True):
    """What ownership reads of ``flightlog.toml``: the rules, and the names of the teams."""

    owners: tuple[OwnerSettings, ...] = ()
    teams: dict[str, Any] = {}


@dataclass(frozen=True)
class OwnerRule:
    """One ``[[owners]]`` rule; ``number`` is its 1-based position, ``line`` its line."""

    number: int
    team: str
    workflow: Pattern | None = None
    agent: Pattern | None = None
    step: Pattern | None = None
    tool: Pattern | None = None
    line: int | None = None

    @property
    def is_catch_all(self) -> bool:
        return all(
            p is None or p.is_wildcard for p in (self.workflow, self.agent, self.step, self.tool)
        )

    def describe(self) -> str:
        parts = [
            f"{k}={p.text!r}"
            for k, p in (
                ("workflow", self.workflow),
                ("agent", self.agent),
                ("step", self.step),
                ("tool", self.tool),
            )
            if p
        ]
        return f"rule {self.number} ({', '.join(parts) or 'catch-all'}) -> {self.team}"


@dataclass(frozen=True)
class OwnerQuery:
    """Who owns this? A workflow, or a step of it (by name, agent, tool name), with the owner
    given in code if any."""

    workflow: str
    step: str | None = None
    agent: str | None = None
    tool: str | None = None
    code_owner: str | None = None


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
    way every part asks, so they all name the same owner."""
    return OwnerQuery(
        workflow,
        step=step,
        agent=agent,
        tool=step if kind == "tool" else None,
        code_owner=code_owner,
    )


def step_query(workflow: str, step: Step) -> OwnerQuery:
    """The ownership question for a recorded step (``owner_query`` with its name, agent,
    kind and the owner given in code)."""
    return owner_query(
        workflow, step=step.name, agent=step.agent, kind=step.kind, code_owner=step.owner
    )


@dataclass
class Ownership:
    """The answer to "who owns this?": the team, whether code or a rule decided, the rule
    that did and every rule that matched (in order)."""

    query: OwnerQuery
    team: str
    source: str  # "code" | "rule"
    rule: OwnerRule | None
    matched: list[OwnerRule] = field(default_factory=list)


def rule_matches(rule: OwnerRule, q: OwnerQuery) -> bool:
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


def resolve(rules: Iterable[OwnerRule], query: OwnerQuery) -> Ownership:
    """Who owns what ``query`` describes: the code owner, else the last matching rule."""
    matched = [r for r in rules if rule_matches(r, query)]
    if query.code_owner:
        return Ownership(query, query.code_owner, "code", None, matched)
    if matched:
        return Ownership(query, matched[-1].team, "rule", matched[-1], matched)
    raise ConfigurationError(
        "no ownership rule matches and there is no catch-all; add [[owners]] team = ..."
    )


def owner_rules(cfg: Config) -> tuple[OwnerRule, ...]:
    """The ``[[owners]]`` rules of a loaded configuration, checked once per ``cfg``: each
    names a team defined in ``[teams]`` and patterns that parse, and one is a catch-all."""
    return cfg.derive("owners", lambda: _rules(cfg))


def _rules(cfg: Config) -> tuple[OwnerRule, ...]:
    f = cfg.typed(OwnersFile)
    rules = []
    for i, rule in enumerate(f.owners):
        if not rule.team:
            raise ConfigurationError(
                f'{cfg.where("owners", i)}: ownership rule {i + 1} needs team = "<team name>"'
            )
        if rule.team not in f.teams:
            known = ", ".join(sorted(f.teams)) or "none defined"
            raise ConfigurationError(
                f"{cfg.where('owners', i, 'team')}: ownership rule {i + 1} names unknown team "
                f"{rule.team!r}; define [teams.{rule.team}] or use one of: {known}"
            )
        rules.append(
            OwnerRule(
                i + 1,
                rule.team,
                workflow=rule.workflow,
                agent=rule.agent,
                step=rule.step,
                tool=rule.tool,
                line=cfg.line_of("owners", i),
            )
        )
    if rules and not any(r.is_catch_all for r in rules):
        raise no_catch_all(cfg, next(iter(f.teams), "<team>"), "owners")
    return tuple(rules)


def no_catch_all(cfg: Config, first_team: str, *keys: str) -> ConfigurationError:
    return ConfigurationError(
        f"{cfg.where(*keys)}: no catch-all ownership rule; failures that match no rule would "
        "reach nobody. Add, as the first rule,\n"
        f'  [[owners]]\n  team = "{first_team}"\n(a rule with no patterns, or '
        'workflow = "*", matches everything; later rules override it)'
    )


def step_owners(
    workflow: str, steps: Iterable[Step], rules: Iterable[OwnerRule] | None = None
) -> dict[str, str]:
    """``{step id: owner}`` for ``steps``: the owner given in code, else the team the
    ``[[owners]]`` rules of ``flightlog.toml`` name (ingested runs carry no code owners).
    Without a configuration, or with an invalid one, only the code owners: reading a run
    must not fail on ownership."""
    steps = list(steps)
    out = {s.id: s.owner for s in steps if s.owner}
    try:
        rules = owner_rules(load_config()) if rules is None else tuple(rules)
        if not rules:
            return out
        for s in steps:
            if s.id not in out:
                out[s.id] = resolve(rules, step_query(workflow, s)).team
    except ConfigurationError:
        return out
    return out


def with_owners(record: RunRecord) -> RunRecord:
    """``record`` (a ``RunRecord`` as read) with each step's owner filled in by
    ``step_owners`` where none was recorded; for display only, never written back."""
    owners = step_owners(record.run.workflow, record.steps)
    for s in record.steps:
        if not s.owner and s.id in owners:
            s.owner = owners[s.id]
    return record
