"""Retrying over HTTP: one backoff and one ``Retry-After`` reader for every sender.

Used by the alert outbox (``flightlog.respond.outbox``, ``respond.channels``) and the remote
SDK's spool replayer (``flightlog.sdk.remote``).

- ``backoff_s``: exponential backoff with *full jitter* ("Exponential Backoff And Jitter",
  AWS Architecture Blog, 2015): the ``n``-th retry waits a uniformly random time in
  ``[0, min(cap, base * 2**(n-1))]``, so clients that failed together do not retry together;
  never less than what the receiver asked for in ``Retry-After`` (up to the cap).
- ``parse_retry_after``: the ``Retry-After`` header (RFC 9110, section 10.2.3): a number of
  seconds or an HTTP-date.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

_RNG = random.Random()


def ceiling_s(attempt: int, *, base_s: float, cap_s: float) -> float:
    """The longest wait before retry number ``attempt`` (1 for the first retry)."""
    return min(cap_s, base_s * 2.0 ** min(max(0, attempt - 1), 64))


def backoff_s(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry): full jitter
    over ``[0, ceiling_s(attempt)]``, at least ``retry_after_s`` (capped at ``cap_s``)."""
    delay = (rng or _RNG).uniform(0.0, ceiling_s(attempt, base_s=base_s, cap_s=cap_s))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, cap_s))
    return delay


def parse_retry_after(value: str | None, *, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP-date, relative
    to ``now_s``, default now); never negative; None when absent or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 HTTP-dates are GMT
        import datetime as dt

        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))
