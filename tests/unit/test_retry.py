"""One backoff (full jitter) and one ``Retry-After`` reader for every sender."""

from __future__ import annotations

import random
from email.utils import formatdate

from hypothesis import given
from hypothesis import strategies as st

from flightlog._retry import backoff_s, ceiling_s, parse_retry_after
from flightlog.respond.outbox import Outbox

bases = st.floats(0.01, 10)
caps = st.floats(0.1, 3600)
attempts = st.integers(1, 200)


@given(attempts, bases, caps, st.integers(0, 2**32))
def test_full_jitter_stays_within_zero_and_the_ceiling(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    rng = random.Random(seed)
    top = ceiling_s(attempt, base_s=base, cap_s=cap)
    assert top <= cap and top == min(cap, base * 2.0 ** min(attempt - 1, 64))
    for _ in range(20):
        assert 0.0 <= backoff_s(attempt, base_s=base, cap_s=cap, rng=rng) <= top


@given(attempts, bases, caps, st.integers(0, 2**32))
def test_full_jitter_spans_the_whole_range(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    """Full jitter, not equal jitter: waits fall in the lower half as often as the upper."""
    rng = random.Random(seed)
    top = ceiling_s(attempt, base_s=base, cap_s=cap)
    waits = [backoff_s(attempt, base_s=base, cap_s=cap, rng=rng) for _ in range(400)]
    assert min(waits) < 0.05 * top and max(waits) > 0.95 * top
    assert 100 < sum(w < top / 2 for w in waits) < 300


@given(attempts, bases, caps, st.floats(0, 10_000), st.integers(0, 2**32))
def test_retry_after_is_a_floor_up_to_the_cap(
    attempt: int, base: float, cap: float, after: float, seed: int
) -> None:
    wait = backoff_s(attempt, base_s=base, cap_s=cap, retry_after_s=after, rng=random.Random(seed))
    assert (
        min(after, cap) <= wait <= max(min(after, cap), ceiling_s(attempt, base_s=base, cap_s=cap))
    )


def test_the_outbox_uses_it() -> None:
    out = Outbox(None, {}, clock=None, rng=random.Random(3))  # type: ignore[arg-type]
    waits = [out.backoff_s(1) for _ in range(200)]
    assert max(waits) <= out.base_delay_s and min(waits) < out.base_delay_s / 2


def test_retry_after_seconds_and_http_dates() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("120", now_s=now) == 120.0
    assert parse_retry_after(" 1.5 ", now_s=now) == 1.5
    assert parse_retry_after("-3", now_s=now) == 0.0
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now_s=now) == 90.0
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now_s=now) == 0.0
    for unreadable in (None, "", "  ", "soon", "Mon, 99 Foo 2026"):
        assert parse_retry_after(unreadable, now_s=now) is None


@given(st.text(max_size=40))
def test_retry_after_never_raises(value: str) -> None:
    got = parse_retry_after(value, now_s=0.0)
    assert got is None or got >= 0.0
