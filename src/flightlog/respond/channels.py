"""Channels: how a notification is shaped for each receiver, and how it is sent; a plug-in
registry, so a new kind of channel joins without editing the engine.

A channel type is an object with the ``ChannelType`` interface (subclass ``Channel``): its
``name`` (the ``type =`` of a ``[channels.NAME]`` table), the ``secrets`` and ``settings`` it
reads, ``check`` (a problem with a configured channel), ``describe``, ``render`` (a
``Notice`` -> the ``Message`` bodies the outbox stores, without secrets) and ``send`` (one
stored body -> a ``DeliveryResult``; secrets are added only here). Channel types are
entry points of the group ``flightlog.channels``; the built-in ones are registered the same
way (``BUILTIN``), so a package adds one with::

    [project.entry-points."flightlog.channels"]
    teams = "my_package.teams:TEAMS"      # an instance of a Channel subclass

Built-in: ``webhook`` (Alertmanager's webhook JSON), ``slack`` (Block Kit), ``pagerduty``
(Events API v2) in ``respond.http_channels``; ``email`` (SMTP) in ``respond.email_channel``.

``send`` classifies the outcome: ``delivered``; ``retry`` (timeouts, connection errors, HTTP
408/429/5xx, SMTP 4xx); ``failed`` (any other 4xx, SMTP 5xx), with the reason. Each HTTP
request carries ``Idempotency-Key`` (the outbox id) and each email that id in its
``Message-ID``, so a receiver can drop the duplicate a crash between sending and recording
can cause.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from flightlog.errors import ConfigurationError
from flightlog.respond.config import ChannelConfig, redact

GROUP = "flightlog.channels"
log = logging.getLogger("flightlog.respond")

# The built-in channel types: entry points of GROUP like any other (installed ones with the
# same name take precedence).
BUILTIN: tuple[metadata.EntryPoint, ...] = tuple(
    metadata.EntryPoint(name, value, GROUP)
    for name, value in (
        ("webhook", "flightlog.respond.http_channels:WEBHOOK"),
        ("slack", "flightlog.respond.http_channels:SLACK"),
        ("pagerduty", "flightlog.respond.http_channels:PAGERDUTY"),
        ("email", "flightlog.respond.email_channel:EMAIL"),
    )
)


@dataclass
class AlertView:
    """One alert as told to a receiver."""

    incident_id: int
    role: str
    status: str  # firing | resolved
    incident_status: str  # triggered | acknowledged | resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_ns: int
    ends_ns: int | None
    fingerprint: str
    dedup_key: str
    severity: str
    summary: str
    text: str


@dataclass
class Notice:
    """A notification to send: a group of alerts (or one, for escalations and the follow-ups
    of a transition) with its kind: ``notify``, ``escalation``, ``acknowledge``, ``resolve``."""

    kind: str
    receiver: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[AlertView]
    external_url: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"


@dataclass(frozen=True)
class Message:
    """One rendered message for the outbox: ``suffix`` makes its id unique within the
    notification, ``incident_id``/``action`` are set for per-incident messages."""

    suffix: str
    body: dict[str, Any]
    summary: str
    incident_id: int | None = None
    action: str | None = None


@dataclass(frozen=True)
class DeliveryResult:
    outcome: str  # delivered | retry | failed
    code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None


@runtime_checkable
class ChannelType(Protocol):
    """What a channel plug-in provides (see the module docstring)."""

    name: str
    secrets: tuple[str, ...]  # settings held as secrets (never stored, shown or logged)
    settings: frozenset[str]  # further keys its [channels.NAME] table may hold
    # Told of acknowledge/resolve (the notice kinds) for each incident it was sent an
    # ``action = "trigger"`` message for (PagerDuty's incident lifecycle).
    follows_transitions: bool

    def check(self, name: str, settings: dict[str, Any], secrets: dict[str, str]) -> str | None:
        """The problem with a configured channel of this type, or None."""
        ...

    def describe(self, channel: ChannelConfig) -> str: ...

    def render(self, channel: ChannelConfig, notice: Notice) -> list[Message]: ...

    def send(self, channel: ChannelConfig, body: dict[str, Any], key: str) -> DeliveryResult:
        """Deliver one rendered message; never raises for delivery problems."""
        ...


class Channel:
    """A base for channel types: one message per notice (``body``), described by its URL."""

    name = ""
    secrets: tuple[str, ...] = ()
    settings: frozenset[str] = frozenset()
    follows_transitions = False

    def check(self, name: str, settings: dict[str, Any], secrets: dict[str, str]) -> str | None:
        return None

    def describe(self, channel: ChannelConfig) -> str:
        return f"{channel.type} {redact(channel.secrets.get('url', ''))}"

    def render(self, channel: ChannelConfig, notice: Notice) -> list[Message]:
        if not notice.alerts:
            return []
        head = headline(notice)
        return [Message("", self.body(channel, notice), head)]

    def body(self, channel: ChannelConfig, notice: Notice) -> dict[str, Any]:
        raise NotImplementedError(f"channel type {self.name!r} renders no body")

    def send(self, channel: ChannelConfig, body: dict[str, Any], key: str) -> DeliveryResult:
        raise NotImplementedError(f"channel type {self.name!r} cannot send")


# -- the registry ------------------------------------------------------------------------------
_types: dict[str, ChannelType] = {}
_broken: dict[str, str] = {}  # name -> why its entry point is not a usable channel type
_loaded = False
_lock = threading.Lock()


def register(channel_type: ChannelType) -> ChannelType:
    """Add (or replace) a channel type by its name; usable without an installed package."""
    if not isinstance(channel_type, ChannelType) or not channel_type.name:
        raise TypeError(f"{channel_type!r} is not a channel type (see flightlog.respond.channels)")
    with _lock:
        _types[channel_type.name] = channel_type
    return channel_type


def _load_entry_points() -> None:
    """Load every entry point of GROUP once. One that cannot be loaded (or is not a channel
    type) is logged and kept as the reason ``channel_type`` gives for its name: the other
    channel types keep working."""
    global _loaded
    with _lock:
        if _loaded:
            return
        installed = {ep.name: ep for ep in metadata.entry_points(group=GROUP)}
        for name, ep in ({ep.name: ep for ep in BUILTIN} | installed).items():
            if name in _types:  # registered in code: that wins
                continue
            try:
                obj = ep.load()
            except Exception as exc:
                _broken[name] = f"cannot be loaded ({ep.value}): {type(exc).__name__}: {exc}"
            else:
                if isinstance(obj, ChannelType) and obj.name == name:
                    _types[name] = obj
                    continue
                _broken[name] = f"{ep.value} is not a channel type named {name!r}"
            log.error("channel type %r (entry point group %s) %s", name, GROUP, _broken[name])
        _loaded = True


def channel_types() -> dict[str, ChannelType]:
    """Every channel type: the built-in ones and those installed packages register."""
    _load_entry_points()
    with _lock:
        return dict(_types)


def channel_type(name: str) -> ChannelType:
    """The channel type ``name``; a ConfigurationError naming the known ones otherwise."""
    known = channel_types()
    try:
        return known[name]
    except KeyError:
        if name in _broken:
            raise ConfigurationError(
                f"channel type {name!r} (entry point group {GROUP}) {_broken[name]}"
            ) from None
        raise ConfigurationError(
            f"unknown channel type {name!r}; expected one of {', '.join(sorted(known))}"
        ) from None


# -- what every channel type uses --------------------------------------------------------------
def render(channel: ChannelConfig, notice: Notice) -> list[Message]:
    """The messages ``notice`` becomes on ``channel`` (none when there is nothing to say)."""
    return channel_type(channel.type).render(channel, notice)


def send(channel: ChannelConfig, body: dict[str, Any], key: str) -> DeliveryResult:
    """Deliver one rendered message through its channel type. Never raises for delivery
    problems: a bug in a channel type must not lose the notification (it is retried)."""
    try:
        return channel_type(channel.type).send(channel, body, key)
    except Exception as exc:
        return DeliveryResult("retry", None, clean(f"{type(exc).__name__}: {exc}", channel))


def clean(text: str, channel: ChannelConfig) -> str:
    """Remove secrets from an error text."""
    for secret in channel.secrets.values():
        if secret and secret in text:
            text = text.replace(secret, redact(secret) if "://" in secret else "***")
    return text[:500]


def headline(notice: Notice) -> str:
    first = notice.alerts[0]
    tag = {"escalation": "ESCALATED", "acknowledge": "ACKNOWLEDGED"}.get(
        notice.kind, notice.status.upper()
    )
    more = f" (+{len(notice.alerts) - 1} more)" if len(notice.alerts) > 1 else ""
    return f"[{tag}] {first.summary}{more}"


def render_text(notice: Notice) -> str:
    """The notice as plain text (email bodies, Slack's fallback)."""
    parts = []
    if notice.note:
        parts.append(notice.note)
    for a in notice.alerts:
        state = a.incident_status if a.status == "firing" else "resolved"
        parts.append(f"{a.text}\nIncident #{a.incident_id} is {state}.")
    return "\n\n".join(parts) + "\n"


def rfc3339(ns: int | None) -> str:
    if ns is None:
        return "0001-01-01T00:00:00Z"
    t = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
