"""Durations and times as people write them: ``250ms``, ``30s``, ``5m``, ``2h``, ``7d``,
``2w``, or an ISO-8601 time. One reader for the CLI, the web UI and ``flightlog.toml``.

Below every capability (it imports only the standard library and ``flightlog.errors``); each
front end turns ``InputError`` into its own kind of error (``click.BadParameter``, a 400 page,
a ``ConfigurationError`` naming the file and line).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from fractions import Fraction

from flightlog.errors import InputError

NS = 1_000_000_000
UNITS_NS = {
    "ms": 1_000_000,
    "s": NS,
    "m": 60 * NS,
    "h": 3600 * NS,
    "d": 86_400 * NS,
    "w": 604_800 * NS,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration_ns(text: str, *, units: tuple[str, ...] | None = None) -> int:
    """``"250ms"``, ``"30s"``, ``"5m"``, ``"4h"``, ``"1d"``, ``"2w"`` (a bare number is
    seconds) -> nanoseconds. ``units``: the units allowed (e.g. ``("h", "d", "w")``); a unit
    is then required. Raises ``InputError`` for anything else."""
    m = _DURATION.match(text)
    unit = m.group(2) if m else None
    if not m or (units is not None and unit not in units):
        raise InputError(f'{text!r} is not a duration; write e.g. "30s", "5m", "4h", "1d"')
    return int(Fraction(m.group(1)) * UNITS_NS[unit or "s"])  # exact: no float rounding


class Duration(int):
    """A length of time in nanoseconds, as the configuration and the command line write it
    (``"30s"``, ``"5m"``, ``"4h"``, or a number of seconds); ``seconds`` for APIs that take
    them. The one duration type of ``flightlog.toml`` settings."""

    @classmethod
    def from_toml(cls, value: object) -> Duration:
        """A TOML value (a string with a unit, or a number of seconds) -> ``Duration``."""
        if isinstance(value, bool):
            raise InputError(f'expected a duration such as "5m", got {value!r}')
        if isinstance(value, (int, float)):
            if value < 0:
                raise InputError(f"a duration cannot be negative ({value})")
            return cls(int(value * NS))
        if not isinstance(value, str):
            raise InputError(f'expected a duration such as "5m", got {value!r}')
        return cls(parse_duration_ns(value))

    @property
    def seconds(self) -> float:
        return self / NS

    def __repr__(self) -> str:
        return f"Duration({int(self)})"


def parse_since(value: str | None, *, now_ns: int | None = None) -> int | None:
    """``30m``, ``2h``, ``7d`` (that long before ``now_ns``, default now) or an ISO-8601 time
    (UTC when it names no zone) -> nanoseconds since the epoch; None for no value."""
    if not value:
        return None
    try:
        ago = parse_duration_ns(value, units=("s", "m", "h", "d", "w"))
    except InputError:
        pass
    else:
        return (time.time_ns() if now_ns is None else now_ns) - ago
    try:
        t = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InputError(
            f"{value!r} is neither a duration (30m, 2h, 7d) nor an ISO-8601 time"
        ) from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1e9)
