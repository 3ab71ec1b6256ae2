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

The settings of these sections are declared once, below, as ``Section`` classes (names,
types, defaults); ``flightlog.config`` checks a file against them, and this module checks
what types cannot say (references between sections, secrets). Every mistake (an unknown
setting, team or channel, no catch-all owner, a malformed pattern or matcher, a channel
without its secret) raises ``ConfigurationError`` naming the file and line. The result is
built once per loaded configuration (``Config.derive``). Secrets (webhook URLs, routing
keys, SMTP passwords) come from the file or from the environment
(``FLIGHTLOG_CHANNEL_<NAME>_<FIELD>``, or the variable named by ``<field>_env``) and are
never put in messages in clear: see ``redact``.

Size: over 500 lines: the response layer's sections are declared here together because they
reference each other (routes name receivers and teams, teams name channels) and are
cross-checked in one pass; channel-specific checks live with each channel plug-in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from flightlog._durations import NS as NS
from flightlog._durations import Duration
from flightlog.config import Config, Section, load_config
from flightlog.errors import ConfigurationError, InputError
from flightlog.owners import OwnerRule as OwnerRule
from flightlog.owners import Pattern as Pattern
from flightlog.owners import no_catch_all, owner_rules
from flightlog.respond.matchers import LABELS as LABELS
from flightlog.respond.matchers import Instant as Instant
from flightlog.respond.matchers import Labels, Matchers, Names
from flightlog.respond.matchers import Matcher as Matcher
from flightlog.respond.matchers import matches_all as matches_all
from flightlog.respond.matchers import parse_time as parse_time

CHANNEL_TYPES: tuple[str, ...] = ("webhook", "slack", "pagerduty", "email")  # the built-in ones
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
OWNER_RECEIVER = "owner"  # route receiver meaning "the channels of the alert's team"

_SECRETS: dict[str, tuple[str, ...]] = {
    "webhook": ("url",),
    "slack": ("url",),
    "pagerduty": ("routing_key",),
    "email": ("password",),
}


# -- values (durations here; times, matchers and label lists: respond.matchers) --------------
def parse_duration(value: Any, where: str) -> int:
    """``"30s"``, ``"5m"``, ``"4h"``, ``"1d"``, ``"2w"``, ``"250ms"`` or a number of seconds
    -> ns (``flightlog._durations.Duration``); errors start with ``where``."""
    try:
        return int(Duration.from_toml(value))
    except InputError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


# -- the settings, declared once ---------------------------------------------------------------
class RespondSettings(Section, frozen=True):
    """``[respond]``."""

    auto_resolve_after: Annotated[int, msgspec.Meta(ge=1)] = 3
    report_url: str | None = None
    severity: str = "error"
    causal_inhibition: bool = True


class EscalationSettings(Section, frozen=True):
    """One level of ``[teams.NAME] escalation``."""

    after: Duration | None = None
    channels: Names = Names()


class TeamSettings(Section, frozen=True):
    """``[teams.NAME]``."""

    channels: Names = Names()
    pager: Names = Names()
    escalation: tuple[EscalationSettings, ...] = ()


class ChannelSettings(Section, frozen=True):
    """``[channels.NAME]`` of a built-in channel type (webhook, slack, pagerduty, email):
    the settings of each (a type uses its own). Plug-in types declare theirs
    (``flightlog.respond.channels.ChannelType.settings``)."""

    type: str = ""
    timeout: Duration | None = None
    headers: dict[str, str] | None = None
    url: str | None = None
    url_env: str | None = None
    routing_key: str | None = None
    routing_key_env: str | None = None
    host: str | None = None
    port: int | None = None
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")
    to: Names = Names()
    severity: str | None = None
    ca_file: str | None = None


class RouteSettings(Section, frozen=True):
    """``[route]`` and each of its ``routes`` (a tree)."""

    matchers: Matchers = Matchers()
    receiver: str | None = None
    channels: Names = Names()
    continue_: bool = msgspec.field(default=False, name="continue")
    group_by: Labels | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    routes: tuple[RouteSettings, ...] = ()


class InhibitSettings(Section, frozen=True):
    """One ``[[inhibit_rules]]``."""

    source_matchers: Matchers = Matchers()
    target_matchers: Matchers = Matchers()
    equal: Labels = Labels()


class SilenceSettings(Section, frozen=True):
    """One ``[[silences]]``."""

    id: str | None = None
    matchers: Matchers = Matchers()
    starts: Instant | None = None
    ends: Instant | None = None
    comment: str = ""


class RespondFile(msgspec.Struct, kw_only=True, frozen=True):
    """The response layer's sections of ``flightlog.toml`` (other sections are others')."""

    respond: RespondSettings = RespondSettings()
    teams: dict[str, TeamSettings] = {}
    # Tables checked per channel type (built-in types as ChannelSettings, plug-ins by the
    # keys they declare): see _channel.
    channels: dict[str, dict[str, Any]] = {}
    route: RouteSettings = RouteSettings()
    inhibit_rules: tuple[InhibitSettings, ...] = ()
    silences: tuple[SilenceSettings, ...] = ()


# -- the validated result ------------------------------------------------------------------
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
        """Where the channel sends, without secrets (its channel type says)."""
        from flightlog.respond.channels import channel_type

        return channel_type(self.type).describe(self)


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
def load_respond_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> RespondConfig:
    """The response sections of ``flightlog.toml`` (see ``flightlog.config``), validated once
    per change of the file or the environment."""
    return respond_config(load_config(path, environ=environ))


def respond_config(cfg: Config, *, environ: Mapping[str, str] | None = None) -> RespondConfig:
    """Validate the response sections of a loaded configuration (once per ``cfg`` and
    environment: later calls return the same object). Secrets come from ``environ``, by
    default the environment ``cfg`` was loaded with."""
    env = cfg.environ if environ is None else dict(environ)
    key = ("respond", None if environ is None else tuple(sorted(env.items())))
    return cfg.derive(key, lambda: _validate(cfg, env))


def _validate(cfg: Config, env: Mapping[str, str]) -> RespondConfig:
    f = cfg.typed(RespondFile)
    where = cfg.where
    out = RespondConfig(source=cfg)
    out.auto_resolve_after = f.respond.auto_resolve_after
    out.severity = f.respond.severity
    out.report_url = f.respond.report_url
    out.causal_inhibition = f.respond.causal_inhibition

    # channels first: teams and routes refer to them
    for name, ch in f.channels.items():
        out.channels[name] = _channel(cfg, env, name, ch)

    def check_channels(names: tuple[str, ...], *keys: str | int) -> None:
        for c in names:
            if c not in out.channels:
                known = ", ".join(sorted(out.channels)) or "none defined"
                raise ConfigurationError(
                    f"{where(*keys)}: unknown channel {c!r}; define [channels.{c}] or use "
                    f"one of: {known}"
                )

    for name, t in f.teams.items():
        pager = t.pager or t.channels
        check_channels(t.channels, "teams", name, "channels")
        check_channels(pager, "teams", name, "pager")
        levels = []
        for i, lv in enumerate(t.escalation):
            if lv.after is None:
                raise ConfigurationError(
                    f"{where('teams', name, 'escalation')}: escalation level {i + 1} needs "
                    'after = "15m"'
                )
            if not lv.channels:
                raise ConfigurationError(
                    f"{where('teams', name, 'escalation')}: escalation level {i + 1} names "
                    "no channels"
                )
            check_channels(lv.channels, "teams", name, "escalation")
            levels.append(EscalationLevel(int(lv.after), tuple(lv.channels)))
        out.teams[name] = Team(name, tuple(t.channels), tuple(pager), tuple(levels))

    out.rules = list(owner_rules(cfg))  # [[owners]]: flightlog.owners
    if (out.teams or out.channels) and not out.rules:
        raise no_catch_all(cfg, next(iter(out.teams), "<team>"), "teams")

    out.route = _route(cfg, f.route, ("route",), None, out)

    for raw in f.inhibit_rules:
        out.inhibit_rules.append(
            InhibitRule(raw.source_matchers, raw.target_matchers, tuple(raw.equal))
        )

    for i, sil in enumerate(f.silences):
        if not sil.matchers:
            raise ConfigurationError(
                f"{where('silences', i)}: a silence needs at least one matcher"
            )
        if sil.ends is None:
            raise ConfigurationError(
                f"{where('silences', i)}: a silence needs ends = <time> (it must expire)"
            )
        out.silences.append(
            Silence(
                sil.id if sil.id is not None else f"config-{i + 1}",
                tuple(sil.matchers),
                int(sil.starts or 0),
                int(sil.ends),
                sil.comment,
            )
        )
    return out


def _route(
    cfg: Config,
    t: RouteSettings,
    keys: tuple[str | int, ...],
    parent: Route | None,
    out: RespondConfig,
) -> Route:
    receiver = t.receiver
    channels: tuple[str, ...] = tuple(t.channels)
    if receiver is None:
        receiver = parent.receiver if parent and not channels else OWNER_RECEIVER
        if parent and not channels:
            channels = parent.channels
    if receiver != OWNER_RECEIVER:
        if receiver not in out.channels:
            known = ", ".join(sorted(out.channels)) or "none defined"
            raise ConfigurationError(
                f'{cfg.where(*keys, "receiver")}: unknown receiver {receiver!r}; use "owner" '
                f"(the team's channels) or a channel: {known}"
            )
        channels = channels or (receiver,)
    for c in channels:
        if c not in out.channels:
            raise ConfigurationError(f"{cfg.where(*keys, 'channels')}: unknown channel {c!r}")

    def dur(value: Duration | None, inherited: int) -> int:
        return int(value) if value is not None else inherited

    group_by = (
        tuple(t.group_by)
        if t.group_by is not None
        else (parent.group_by if parent else DEFAULT_GROUP_BY)
    )
    node_id = "root" if parent is None else f"{parent.id}.{keys[-1]}"
    node = Route(
        id=node_id,
        matchers=tuple(t.matchers),
        receiver=receiver,
        channels=channels if receiver == OWNER_RECEIVER else (channels or (receiver,)),
        continue_=t.continue_,
        group_by=group_by,
        group_wait_ns=dur(t.group_wait, parent.group_wait_ns if parent else 30 * NS),
        group_interval_ns=dur(t.group_interval, parent.group_interval_ns if parent else 300 * NS),
        repeat_interval_ns=dur(
            t.repeat_interval, parent.repeat_interval_ns if parent else 4 * 3600 * NS
        ),
    )
    children = [
        _route(cfg, child, (*keys, "routes", i), node, out) for i, child in enumerate(t.routes)
    ]
    object.__setattr__(node, "routes", tuple(children))
    return node


BUILTIN_TYPES = frozenset(_SECRETS)
_COMMON = frozenset({"type", "timeout", "headers"})


class PluginChannelSettings(msgspec.Struct, kw_only=True, frozen=True):
    """What every channel type's table may hold besides its own settings (a plug-in's own
    keys are checked against those it declares)."""

    type: str = ""
    timeout: Duration | None = None
    headers: dict[str, str] | None = None


def _channel(cfg: Config, env: Mapping[str, str], name: str, t: dict[str, Any]) -> ChannelConfig:
    """One ``[channels.NAME]``: its type (a plug-in, ``flightlog.respond.channels``), its
    settings checked against what the type declares, its secrets resolved, then the type's
    own ``check``."""
    from flightlog.respond.channels import channel_type

    keys = ("channels", name)
    kind = t.get("type")
    try:
        ct = channel_type(str(kind))
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"{cfg.where(*keys, 'type')}: channel {name!r} has {exc}"
        ) from None
    if kind in BUILTIN_TYPES:
        typed = cfg.typed(ChannelSettings, *keys)
        timeout, starttls = typed.timeout, typed.starttls
    else:
        allowed = _COMMON | ct.settings | set(ct.secrets) | {f"{x}_env" for x in ct.secrets}
        for k in t:
            if k not in allowed:
                raise ConfigurationError(
                    f"{cfg.where(*keys, k)}: unknown setting {k!r} in [channels.{name}]; "
                    f"expected one of {', '.join(sorted(allowed))}"
                )
        common = cfg.typed(PluginChannelSettings, *keys)
        timeout, starttls = common.timeout, False
    hidden = {*ct.secrets, *(f"{x}_env" for x in ct.secrets)}
    if kind in BUILTIN_TYPES:  # as before plug-ins: no built-in keeps these as settings
        hidden |= _SECRET_FIELDS
    settings: dict[str, Any] = {k: v for k, v in t.items() if k not in hidden}
    secrets: dict[str, str] = {}
    for secret in ct.secrets:
        value = _secret(cfg, env, name, t, secret)
        if value is None:
            if kind == "email" and not t.get("username"):
                continue  # no authentication, no password needed
            named = t.get(f"{secret}_env")
            raise ConfigurationError(
                f"{cfg.where(*keys)}: channel {name!r} ({kind}) has no {secret}; set {secret} = "
                f'"..." here, or the environment variable {channel_env_var(name, secret)}'
                + (f" (or ${named})" if named else "")
            )
        secrets[secret] = value
    if kind == "pagerduty":
        settings["url"] = str(t.get("url", PAGERDUTY_URL))
    if kind == "email":
        if not t.get("host"):
            raise ConfigurationError(f"{cfg.where(*keys)}: email channel {name!r} needs host")
        if not t.get("to") or not t.get("from"):
            raise ConfigurationError(
                f'{cfg.where(*keys)}: email channel {name!r} needs from = "..." and to = ["..."]'
            )
        settings["to"] = list(Names.from_toml(t["to"]))
        settings.setdefault("port", 587 if starttls else 25)
        settings["starttls"] = starttls
    if timeout is not None:
        settings["timeout"] = timeout.seconds
    problem = ct.check(name, settings, secrets)
    if problem:
        at = next((k for k in (*ct.secrets, "url") if k in t), None)
        where = cfg.where(*keys, at) if at else cfg.where(*keys)
        raise ConfigurationError(f"{where}: {problem}")
    return ChannelConfig(name, str(kind), settings, secrets, cfg.line_of(*keys))


# Secrets of the built-in types, also never kept among a channel's plain settings.
_SECRET_FIELDS = frozenset(
    {x for names in _SECRETS.values() for x in names}
    | {f"{x}_env" for names in _SECRETS.values() for x in names}
)


def _secret(
    cfg: Config, env: Mapping[str, str], channel: str, t: dict[str, Any], field_name: str
) -> str | None:
    named = t.get(field_name + "_env")
    if named:
        if not str(named).startswith("FLIGHTLOG_"):
            raise ConfigurationError(
                f"{cfg.where('channels', channel, field_name + '_env')}: {field_name}_env must "
                f"name a FLIGHTLOG_* environment variable, got {named!r}"
            )
        if env.get(str(named)):
            return env[str(named)]
    conventional = env.get(channel_env_var(channel, field_name))
    if conventional:
        return conventional
    value = t.get(field_name)
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(
            f"{cfg.where('channels', channel, field_name)}: {field_name} must be a string"
        )
    return value or None
