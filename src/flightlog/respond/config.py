"""The response layer's settings in ``flightlog.toml``, validated at start.

Sections read here (see ``docs/alerting.md`` for a full example)::

    [respond]            auto_resolve_after, report_url, severity, causal_inhibition
    [teams.NAME]         channels, pager, escalation = [{after, channels}, ...]
    [[owners]]           workflow / agent / step / tool patterns -> team (last match wins)
    [channels.NAME]      type = webhook | slack | pagerduty | email, and its settings
    [route]              the routing tree: matchers, receiver, continue, group_by,
                         group_wait, group_interval, repeat_interval, routes = [...]
    [[inhibit_rules]]    source_matchers, target_matchers, equal
    [[silences]]         matchers, starts, ends, comment

Every mistake (an unknown team or channel, no catch-all owner, a malformed pattern or
matcher, a channel without its secret) raises ``ConfigurationError`` naming the file and
line. Secrets (webhook URLs, routing keys, SMTP passwords) come from the file or from the
environment (``FLIGHTLOG_CHANNEL_<NAME>_<FIELD>``, or the variable named by
``<field>_env``) and are never put in messages in clear: see ``redact``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flightlog._durations import parse_duration_ns
from flightlog.config import Config, load_config
from flightlog.errors import ConfigurationError, InputError

NS = 1_000_000_000

LABELS: tuple[str, ...] = (
    "workflow",
    "severity",
    "team",
    "agent",
    "step",
    "role",
    "failure_step",
    "incident",
    "fingerprint",
    "error",
)
CHANNEL_TYPES: tuple[str, ...] = ("webhook", "slack", "pagerduty", "email")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
OWNER_RECEIVER = "owner"  # route receiver meaning "the channels of the alert's team"

_SECRETS: dict[str, tuple[str, ...]] = {
    "webhook": ("url",),
    "slack": ("url",),
    "pagerduty": ("routing_key",),
    "email": ("password",),
}


# -- durations -------------------------------------------------------------------------------
def parse_duration(value: Any, where: str) -> int:
    """``"30s"``, ``"5m"``, ``"4h"``, ``"1d"``, ``"2w"``, ``"250ms"`` or a number of seconds
    -> ns (``flightlog._durations``)."""
    if isinstance(value, bool):
        raise ConfigurationError(f'{where}: expected a duration such as "5m", got {value!r}')
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigurationError(f"{where}: a duration cannot be negative ({value})")
        return int(value * NS)
    try:
        return parse_duration_ns(str(value))
    except InputError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def parse_time(value: Any, where: str) -> int:
    """An RFC 3339 time (TOML datetime or string) -> ns since the epoch (UTC if naive)."""
    if isinstance(value, dt.datetime):
        t = value
    else:
        try:
            t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigurationError(
                f"{where}: {value!r} is not a time; write e.g. 2026-01-31T18:00:00Z"
            ) from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1_000_000) * 1000


# -- patterns and matchers ------------------------------------------------------------------
@dataclass(frozen=True)
class Pattern:
    """A name pattern: a glob (``claims-*``, ``search_?``, ``[ab]*``) or ``re:REGEX``.

    Globs are case-sensitive and match the whole name.
    """

    text: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, text: Any, where: str) -> Pattern:
        if not isinstance(text, str) or not text.strip():
            raise ConfigurationError(
                f'{where}: a pattern must be a non-empty string such as "claims-*", got {text!r}'
            )
        if text.startswith("re:"):
            try:
                return cls(text, re.compile(text[3:]))
            except re.error as exc:
                raise ConfigurationError(
                    f"{where}: malformed regular expression {text[3:]!r} ({exc}); fix it or "
                    'use a glob such as "search_*"'
                ) from exc
        i = 0
        while i < len(text):
            if text[i] == "[":
                start = i + 1
                if text[start : start + 1] == "!":
                    start += 1
                close = text.find("]", start + 1 if text[start : start + 1] == "]" else start)
                if close == -1:
                    raise ConfigurationError(
                        f"{where}: malformed pattern {text!r}: '[' at position {i + 1} is never "
                        "closed; close the character class, or write [[] for a literal '['"
                    )
                i = close
            i += 1
        return cls(text, re.compile(fnmatch.translate(text)))

    def matches(self, name: str | None) -> bool:
        return name is not None and self.regex.fullmatch(name) is not None

    @property
    def is_wildcard(self) -> bool:
        return self.text in ("*", "re:.*")


_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Matcher:
    """An Alertmanager label matcher: ``label="v"``, ``label!="v"``, ``label=~"re"``,
    ``label!~"re"`` (regular expressions are anchored at both ends)."""

    label: str
    op: str
    value: str
    regex: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: Any, where: str) -> Matcher:
        m = _MATCHER.match(text) if isinstance(text, str) else None
        if not m:
            raise ConfigurationError(
                f'{where}: malformed matcher {text!r}; write label="value", label!="value",'
                ' label=~"regex" or label!~"regex"'
            )
        label, op, value = m.group(1), m.group(2), m.group(3)
        if label not in LABELS:
            raise ConfigurationError(
                f"{where}: matcher {text!r} uses unknown label {label!r}; labels are "
                + ", ".join(LABELS)
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(value)
            except re.error as exc:
                raise ConfigurationError(
                    f"{where}: malformed regular expression in matcher {text!r} ({exc})"
                ) from exc
        return cls(label, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.regex is not None
        hit = self.regex.fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


# -- the sections -----------------------------------------------------------------------------
@dataclass(frozen=True)
class EscalationLevel:
    after_ns: int
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Team:
    """A team: where its notifications go (``channels``), where it is paged (``pager``,
    default the same) and who is paged next when a page is not acknowledged in time."""

    name: str
    channels: tuple[str, ...]
    pager: tuple[str, ...]
    escalation: tuple[EscalationLevel, ...] = ()


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
class ChannelConfig:
    """A channel: its ``type``, plain ``settings`` and ``secrets`` (never shown in clear)."""

    name: str
    type: str
    settings: dict[str, Any]
    secrets: dict[str, str]
    line: int | None = None

    @property
    def timeout_s(self) -> float:
        return float(self.settings.get("timeout", 10))

    def describe(self) -> str:
        """Where the channel sends, without secrets."""
        if self.type == "email":
            s = self.settings
            return f"smtp://{s.get('host')}:{s.get('port')} to {', '.join(s.get('to', []))}"
        if self.type == "pagerduty":
            return f"pagerduty {redact(str(self.settings.get('url', PAGERDUTY_URL)))}"
        return f"{self.type} {redact(self.secrets.get('url', ''))}"


@dataclass(frozen=True)
class Route:
    """A node of the routing tree (Alertmanager semantics: the first matching child wins
    unless it says ``continue``; a node with no matching child takes the alert itself)."""

    id: str
    matchers: tuple[Matcher, ...]
    receiver: str  # "owner" or a channel name
    channels: tuple[str, ...]  # explicit channels (when receiver is not "owner")
    continue_: bool
    group_by: tuple[str, ...]
    group_wait_ns: int
    group_interval_ns: int
    repeat_interval_ns: int
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True)
class InhibitRule:
    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...]


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_ns: int
    ends_ns: int
    comment: str = ""

    def active(self, now_ns: int) -> bool:
        return self.starts_ns <= now_ns < self.ends_ns


@dataclass
class RespondConfig:
    """Everything the response layer reads from the configuration, validated."""

    teams: dict[str, Team] = field(default_factory=dict)
    rules: list[OwnerRule] = field(default_factory=list)
    channels: dict[str, ChannelConfig] = field(default_factory=dict)
    route: Route | None = None
    inhibit_rules: list[InhibitRule] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)
    auto_resolve_after: int = 3
    severity: str = "error"
    report_url: str | None = None
    causal_inhibition: bool = True
    source: Config | None = None

    @property
    def enabled(self) -> bool:
        """True when there is somewhere to send alerts."""
        return bool(self.channels)


DEFAULT_GROUP_BY = ("incident",)


# -- secrets -----------------------------------------------------------------------------------
_URL_SECRET = re.compile(r"^(\w+://[^/?#@]*@?[^/?#]*)(.*)$")


def redact(url: str) -> str:
    """Keep the scheme and host of a URL and hide the rest (webhook URLs are secrets)."""
    if not url:
        return "<unset>"
    m = _URL_SECRET.match(url)
    if not m:
        return "<redacted>"
    host = m.group(1)
    if "@" in host:  # credentials in the authority
        scheme, rest = host.split("://", 1)
        host = f"{scheme}://***@{rest.split('@', 1)[1]}"
    return host + ("/***" if m.group(2) not in ("", "/") else "")


def channel_env_var(channel: str, field_name: str) -> str:
    """``FLIGHTLOG_CHANNEL_<CHANNEL>_<FIELD>``, upper-cased, other characters as ``_``."""
    norm = re.sub(r"[^A-Za-z0-9]", "_", channel).upper()
    return f"FLIGHTLOG_CHANNEL_{norm}_{field_name.upper()}"


# -- loading -------------------------------------------------------------------------------
class _Reader:
    def __init__(self, cfg: Config, environ: Mapping[str, str]) -> None:
        self.cfg = cfg
        self.env = environ

    def where(self, *keys: str | int) -> str:
        return self.cfg.where(*keys)

    def table(self, value: Any, *keys: str | int) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigurationError(f"{self.where(*keys)}: expected a table, got {value!r}")
        return value

    def strings(self, value: Any, *keys: str | int) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigurationError(
                f"{self.where(*keys)}: expected a list of strings, got {value!r}"
            )
        return tuple(value)

    def unknown_keys(self, table: dict[str, Any], allowed: set[str], *keys: str | int) -> None:
        for k in table:
            if k not in allowed:
                raise ConfigurationError(
                    f"{self.where(*keys, k)}: unknown setting {k!r}; expected one of "
                    + ", ".join(sorted(allowed))
                )


def load_respond_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> RespondConfig:
    """Load ``flightlog.toml`` (see ``flightlog.config``) and validate its response sections."""
    env = os.environ if environ is None else environ
    return respond_config(load_config(path, environ=env), environ=env)


def respond_config(cfg: Config, *, environ: Mapping[str, str] | None = None) -> RespondConfig:
    """Validate the response sections of a loaded configuration."""
    r = _Reader(cfg, os.environ if environ is None else environ)
    data = cfg.data
    out = RespondConfig(source=cfg)

    general = r.table(data.get("respond"), "respond")
    r.unknown_keys(
        general, {"auto_resolve_after", "report_url", "severity", "causal_inhibition"}, "respond"
    )
    n = general.get("auto_resolve_after", 3)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigurationError(
            f"{r.where('respond', 'auto_resolve_after')}: auto_resolve_after must be a whole "
            f"number of successful runs >= 1, got {n!r}"
        )
    out.auto_resolve_after = n
    out.severity = str(general.get("severity", "error"))
    out.report_url = general.get("report_url")
    out.causal_inhibition = bool(general.get("causal_inhibition", True))

    # channels first: teams and routes refer to them
    for name, raw in r.table(data.get("channels"), "channels").items():
        out.channels[name] = _channel(r, name, r.table(raw, "channels", name))

    def check_channels(names: tuple[str, ...], *keys: str | int) -> None:
        for c in names:
            if c not in out.channels:
                known = ", ".join(sorted(out.channels)) or "none defined"
                raise ConfigurationError(
                    f"{r.where(*keys)}: unknown channel {c!r}; define [channels.{c}] or use "
                    f"one of: {known}"
                )

    for name, raw in r.table(data.get("teams"), "teams").items():
        t = r.table(raw, "teams", name)
        r.unknown_keys(t, {"channels", "pager", "escalation"}, "teams", name)
        channels = r.strings(t.get("channels"), "teams", name, "channels")
        pager = r.strings(t.get("pager"), "teams", name, "pager") or channels
        check_channels(channels, "teams", name, "channels")
        check_channels(pager, "teams", name, "pager")
        levels = []
        raw_levels = t.get("escalation") or []
        if not isinstance(raw_levels, list):
            raise ConfigurationError(
                f"{r.where('teams', name, 'escalation')}: escalation must be a list of "
                '{ after = "15m", channels = [...] }'
            )
        for i, lv in enumerate(raw_levels):
            lvt = r.table(lv, "teams", name, "escalation", i)
            r.unknown_keys(lvt, {"after", "channels"}, "teams", name, "escalation")
            if "after" not in lvt:
                raise ConfigurationError(
                    f"{r.where('teams', name, 'escalation')}: escalation level {i + 1} needs "
                    'after = "15m"'
                )
            after = parse_duration(lvt["after"], r.where("teams", name, "escalation"))
            lv_channels = r.strings(lvt.get("channels"), "teams", name, "escalation")
            if not lv_channels:
                raise ConfigurationError(
                    f"{r.where('teams', name, 'escalation')}: escalation level {i + 1} names "
                    "no channels"
                )
            check_channels(lv_channels, "teams", name, "escalation")
            levels.append(EscalationLevel(after, lv_channels))
        out.teams[name] = Team(name, channels, pager, tuple(levels))

    raw_rules = data.get("owners") or []
    if not isinstance(raw_rules, list):
        raise ConfigurationError(
            f"{r.where('owners')}: owners must be an array of tables ([[owners]] ...)"
        )
    for i, raw in enumerate(raw_rules):
        t = r.table(raw, "owners", i)
        r.unknown_keys(t, {"team", "workflow", "agent", "step", "tool"}, "owners", i)
        team = t.get("team")
        if not isinstance(team, str) or not team:
            raise ConfigurationError(
                f'{r.where("owners", i)}: ownership rule {i + 1} needs team = "<team name>"'
            )
        if team not in out.teams:
            known = ", ".join(sorted(out.teams)) or "none defined"
            raise ConfigurationError(
                f"{r.where('owners', i, 'team')}: ownership rule {i + 1} names unknown team "
                f"{team!r}; define [teams.{team}] or use one of: {known}"
            )
        pats = {
            k: Pattern.parse(t[k], r.where("owners", i, k)) if k in t else None
            for k in ("workflow", "agent", "step", "tool")
        }
        out.rules.append(OwnerRule(i + 1, team, line=cfg.line_of("owners", i), **pats))

    wants_owners = bool(out.rules or out.teams or out.channels)
    if wants_owners and not any(rule.is_catch_all for rule in out.rules):
        first_team = next(iter(out.teams), "<team>")
        raise ConfigurationError(
            f"{r.where('owners') if out.rules else r.where('teams')}: no catch-all ownership "
            "rule; failures that match no rule would reach nobody. Add, as the first rule,\n"
            f'  [[owners]]\n  team = "{first_team}"\n(a rule with no patterns, or '
            'workflow = "*", matches everything; later rules override it)'
        )

    out.route = _route(r, r.table(data.get("route"), "route"), ("route",), None, out)

    for i, raw in enumerate(data.get("inhibit_rules") or []):
        t = r.table(raw, "inhibit_rules", i)
        r.unknown_keys(t, {"source_matchers", "target_matchers", "equal"}, "inhibit_rules", i)
        out.inhibit_rules.append(
            InhibitRule(
                _matchers(r, t.get("source_matchers"), "inhibit_rules", i, "source_matchers"),
                _matchers(r, t.get("target_matchers"), "inhibit_rules", i, "target_matchers"),
                _labels(r, t.get("equal"), "inhibit_rules", i, "equal"),
            )
        )

    for i, raw in enumerate(data.get("silences") or []):
        t = r.table(raw, "silences", i)
        r.unknown_keys(t, {"id", "matchers", "starts", "ends", "comment"}, "silences", i)
        matchers = _matchers(r, t.get("matchers"), "silences", i, "matchers")
        if not matchers:
            raise ConfigurationError(
                f"{r.where('silences', i)}: a silence needs at least one matcher"
            )
        if "ends" not in t:
            raise ConfigurationError(
                f"{r.where('silences', i)}: a silence needs ends = <time> (it must expire)"
            )
        starts = parse_time(t["starts"], r.where("silences", i, "starts")) if "starts" in t else 0
        ends = parse_time(t["ends"], r.where("silences", i, "ends"))
        out.silences.append(
            Silence(
                str(t.get("id", f"config-{i + 1}")),
                matchers,
                starts,
                ends,
                str(t.get("comment", "")),
            )
        )
    return out


def _matchers(r: _Reader, value: Any, *keys: str | int) -> tuple[Matcher, ...]:
    return tuple(Matcher.parse(v, r.where(*keys)) for v in r.strings(value, *keys))


def _labels(r: _Reader, value: Any, *keys: str | int) -> tuple[str, ...]:
    labels = r.strings(value, *keys)
    for lab in labels:
        if lab not in LABELS and lab != "...":
            raise ConfigurationError(
                f"{r.where(*keys)}: unknown label {lab!r}; labels are " + ", ".join(LABELS)
            )
    return labels


def _route(
    r: _Reader,
    t: dict[str, Any],
    keys: tuple[str | int, ...],
    parent: Route | None,
    out: RespondConfig,
) -> Route:
    r.unknown_keys(
        t,
        {
            "matchers",
            "receiver",
            "channels",
            "continue",
            "group_by",
            "group_wait",
            "group_interval",
            "repeat_interval",
            "routes",
        },
        *keys,
    )
    receiver = t.get("receiver")
    channels = r.strings(t.get("channels"), *keys, "channels")
    if receiver is None:
        receiver = parent.receiver if parent and not channels else OWNER_RECEIVER
        if parent and not channels:
            channels = parent.channels
    if not isinstance(receiver, str):
        raise ConfigurationError(f"{r.where(*keys, 'receiver')}: receiver must be a string")
    if receiver != OWNER_RECEIVER:
        if receiver not in out.channels:
            known = ", ".join(sorted(out.channels)) or "none defined"
            raise ConfigurationError(
                f'{r.where(*keys, "receiver")}: unknown receiver {receiver!r}; use "owner" '
                f"(the team's channels) or a channel: {known}"
            )
        channels = channels or (receiver,)
    for c in channels:
        if c not in out.channels:
            raise ConfigurationError(f"{r.where(*keys, 'channels')}: unknown channel {c!r}")

    def dur(name: str, default: int) -> int:
        return parse_duration(t[name], r.where(*keys, name)) if name in t else default

    group_by = (
        _labels(r, t["group_by"], *keys, "group_by")
        if "group_by" in t
        else (parent.group_by if parent else DEFAULT_GROUP_BY)
    )
    node_id = "root" if parent is None else f"{parent.id}.{keys[-1]}"
    node = Route(
        id=node_id,
        matchers=_matchers(r, t.get("matchers"), *keys, "matchers"),
        receiver=receiver,
        channels=channels if receiver == OWNER_RECEIVER else (channels or (receiver,)),
        continue_=bool(t.get("continue", False)),
        group_by=group_by,
        group_wait_ns=dur("group_wait", parent.group_wait_ns if parent else 30 * NS),
        group_interval_ns=dur("group_interval", parent.group_interval_ns if parent else 300 * NS),
        repeat_interval_ns=dur(
            "repeat_interval", parent.repeat_interval_ns if parent else 4 * 3600 * NS
        ),
    )
    children = []
    raw_children = t.get("routes") or []
    if not isinstance(raw_children, list):
        raise ConfigurationError(f"{r.where(*keys, 'routes')}: routes must be a list of tables")
    for i, child in enumerate(raw_children):
        children.append(
            _route(r, r.table(child, *keys, "routes", i), (*keys, "routes", i), node, out)
        )
    object.__setattr__(node, "routes", tuple(children))
    return node


def _channel(r: _Reader, name: str, t: dict[str, Any]) -> ChannelConfig:
    keys = ("channels", name)
    kind = t.get("type")
    if kind not in CHANNEL_TYPES:
        raise ConfigurationError(
            f"{r.where(*keys, 'type')}: channel {name!r} has type {kind!r}; expected one of "
            + ", ".join(CHANNEL_TYPES)
        )
    allowed = {
        "type",
        "timeout",
        "headers",
        "url",
        "url_env",
        "routing_key",
        "routing_key_env",
        "host",
        "port",
        "starttls",
        "username",
        "password",
        "password_env",
        "from",
        "to",
        "severity",
        "ca_file",
    }
    r.unknown_keys(t, allowed, *keys)
    settings = {
        k: v
        for k, v in t.items()
        if k not in ("url", "routing_key", "password") and not k.endswith("_env")
    }
    secrets: dict[str, str] = {}
    for secret in _SECRETS[kind]:
        value = _secret(r, name, t, secret)
        if value is None:
            if kind == "email" and not t.get("username"):
                continue  # no authentication, no password needed
            raise ConfigurationError(
                f"{r.where(*keys)}: channel {name!r} ({kind}) has no {secret}; set {secret} = "
                f'"..." here, or the environment variable {channel_env_var(name, secret)}'
                + (f" (or ${t[secret + '_env']})" if t.get(secret + "_env") else "")
            )
        secrets[secret] = value
    if kind == "pagerduty":
        settings["url"] = str(t.get("url", PAGERDUTY_URL))
        if settings["url"].startswith("http") is False:
            raise ConfigurationError(f"{r.where(*keys, 'url')}: url must be http(s)://...")
    if kind in ("webhook", "slack") and not secrets["url"].startswith(("http://", "https://")):
        raise ConfigurationError(
            f"{r.where(*keys, 'url')}: channel {name!r} url must start with http:// or https://"
            f" (got {redact(secrets['url'])})"
        )
    if kind == "email":
        if not t.get("host"):
            raise ConfigurationError(f"{r.where(*keys)}: email channel {name!r} needs host")
        to = r.strings(t.get("to"), *keys, "to")
        if not to or not t.get("from"):
            raise ConfigurationError(
                f'{r.where(*keys)}: email channel {name!r} needs from = "..." and to = ["..."]'
            )
        settings["to"] = list(to)
        settings.setdefault("port", 587 if t.get("starttls") else 25)
        settings["starttls"] = bool(t.get("starttls", False))
    if "timeout" in t:
        settings["timeout"] = parse_duration(t["timeout"], r.where(*keys, "timeout")) / NS
    if "headers" in t and not isinstance(t["headers"], dict):
        raise ConfigurationError(f"{r.where(*keys, 'headers')}: headers must be a table")
    return ChannelConfig(name, kind, settings, secrets, r.cfg.line_of(*keys))


def _secret(r: _Reader, channel: str, t: dict[str, Any], field_name: str) -> str | None:
    named = t.get(field_name + "_env")
    if named:
        if not str(named).startswith("FLIGHTLOG_"):
            raise ConfigurationError(
                f"{r.where('channels', channel, field_name + '_env')}: {field_name}_env must "
                f"name a FLIGHTLOG_* environment variable, got {named!r}"
            )
        if r.env.get(str(named)):
            return r.env[str(named)]
    conventional = r.env.get(channel_env_var(channel, field_name))
    if conventional:
        return conventional
    value = t.get(field_name)
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(
            f"{r.where('channels', channel, field_name)}: {field_name} must be a string"
        )
    return value or None
