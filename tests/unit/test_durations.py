"""One reader of durations and times (``flightlog._durations``) for the CLI, UI and config."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightlog._durations import UNITS_NS, parse_duration_ns, parse_since
from flightlog.errors import ConfigurationError, InputError
from flightlog.respond.config import parse_duration

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("250ms", 250_000_000),
        ("30s", 30 * S),
        ("30", 30 * S),
        ("1.5", 1_500_000_000),
        (" 5 m ", 300 * S),
        ("4h", 4 * 3600 * S),
        ("1d", 86_400 * S),
        ("2w", 2 * 604_800 * S),
    ],
)
def test_durations(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns
    assert parse_duration(text, "where") == ns  # flightlog.toml reads the same


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-5s", "5y", "1e3s", "s"])
def test_not_durations(text: str) -> None:
    with pytest.raises(InputError, match="is not a duration"):
        parse_duration_ns(text)
    with pytest.raises(ConfigurationError, match=r"^where: .* is not a duration; write e\.g\."):
        parse_duration(text, "where")


def test_units_can_be_required() -> None:
    assert parse_duration_ns("7d", units=("h", "d", "w")) == 7 * 86_400 * S
    for text in ("30", "30s", "250ms"):
        with pytest.raises(InputError):
            parse_duration_ns(text, units=("h", "d", "w"))


@given(st.integers(0, 10**6), st.sampled_from(sorted(UNITS_NS)))
def test_every_unit_round_trips(n: int, unit: str) -> None:
    assert parse_duration_ns(f"{n}{unit}") == n * UNITS_NS[unit]


def test_since_is_a_duration_ago_or_a_time() -> None:
    now = 1_800_000_000 * S
    assert parse_since("2h", now_ns=now) == now - 7200 * S
    assert parse_since("2026-01-31", now_ns=now) == 1_769_817_600 * S
    assert parse_since(None) is None and parse_since("") is None
    for text in ("30", "250ms", "yesterday-ish"):
        with pytest.raises(InputError, match="neither a duration"):
            parse_since(text, now_ns=now)
