"""Durations and times as people write them: ``30m``, ``2h``, ``7d``, or an ISO-8601 time.

Below every capability (it imports only the standard library and ``flightlog.errors``), so the
CLI, the web UI and the library read a ``--since`` the same way; each front end turns
``InputError`` into its own kind of error (``click.BadParameter``, a 400 page).
"""

from __future__ import annotations

import datetime as dt
import re
import time

from flightlog.errors import InputError

_AGO = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str | None, *, now_ns: int | None = None) -> int | None:
    """``30m``, ``2h``, ``7d`` (that long before ``now_ns``, default now) or an ISO-8601 time
    (UTC when it names no zone) -> nanoseconds since the epoch; None for no value."""
    if not value:
        return None
    m = _AGO.fullmatch(value.strip())
    if m:
        seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
        return (time.time_ns() if now_ns is None else now_ns) - seconds * 1_000_000_000
    try:
        t = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InputError(
            f"{value!r} is neither a duration (30m, 2h, 7d) nor an ISO-8601 time"
        ) from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1e9)
