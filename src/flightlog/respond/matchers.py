"""Values of the response sections of ``flightlog.toml`` that are more than strings, each
read by its ``from_toml`` (so ``flightlog.config`` reports a bad one with its file, line and
setting): alert label matchers (Alertmanager syntax), lists of names, matchers and labels,
and times (silences).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from flightlog.errors import ConfigurationError, InputError

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


class Instant(int):
    """An RFC 3339 time (a TOML datetime or a string), in ns since the epoch (UTC if naive)."""

    @classmethod
    def from_toml(cls, value: Any) -> Instant:
        if isinstance(value, dt.datetime):
            t = value
        else:
            try:
                t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise InputError(
                    f"{value!r} is not a time; write e.g. 2026-01-31T18:00:00Z"
                ) from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return cls(int(t.timestamp() * 1_000_000) * 1000)


def parse_time(value: Any, where: str) -> int:
    """An RFC 3339 time (TOML datetime or string) -> ns since the epoch (UTC if naive)."""
    try:
        return int(Instant.from_toml(value))
    except InputError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class Matcher:
    """An Alertmanager label matcher: ``label="v"``, ``label!="v"``, ``label=~"re"``,
    ``label!~"re"`` (regular expressions are anchored at both ends)."""

    __slots__ = ("label", "op", "regex", "value")

    def __init__(
        self, label: str, op: str, value: str, regex: re.Pattern[str] | None = None
    ) -> None:
        self.label = label
        self.op = op
        self.value = value
        self.regex = regex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Matcher) and (other.label, other.op, other.value) == (
            self.label,
            self.op,
            self.value,
        )

    def __hash__(self) -> int:
        return hash((self.label, self.op, self.value))

    def __repr__(self) -> str:
        return f"Matcher({str(self)!r})"

    @classmethod
    def from_toml(cls, text: Any) -> Matcher:
        m = _MATCHER.match(text) if isinstance(text, str) else None
        if not m:
            raise InputError(
                f'malformed matcher {text!r}; write label="value", label!="value",'
                ' label=~"regex" or label!~"regex"'
            )
        label, op, value = m.group(1), m.group(2), m.group(3)
        if label not in LABELS:
            raise InputError(
                f"matcher {text!r} uses unknown label {label!r}; labels are " + ", ".join(LABELS)
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(value)
            except re.error as exc:
                raise InputError(
                    f"malformed regular expression in matcher {text!r} ({exc})"
                ) from None
        return cls(label, op, value, regex)

    @classmethod
    def parse(cls, text: Any, where: str) -> Matcher:
        try:
            return cls.from_toml(text)
        except InputError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None

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


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"expected a list of strings, got {value!r}")
    return tuple(value)


class Names(tuple[str, ...]):
    """A list of names (a single name may be written as a string)."""

    @classmethod
    def from_toml(cls, value: Any) -> Names:
        return cls(_strings(value))


class Matchers(tuple[Matcher, ...]):
    """A list of matchers (a single one may be written as a string)."""

    @classmethod
    def from_toml(cls, value: Any) -> Matchers:
        return cls(Matcher.from_toml(v) for v in _strings(value))


class Labels(tuple[str, ...]):
    """Alert label names (``group_by``, ``equal``); ``...`` groups by every label."""

    @classmethod
    def from_toml(cls, value: Any) -> Labels:
        labels = _strings(value)
        for lab in labels:
            if lab not in LABELS and lab != "...":
                raise InputError(f"unknown label {lab!r}; labels are " + ", ".join(LABELS))
        return cls(labels)
