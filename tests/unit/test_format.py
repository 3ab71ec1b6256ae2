"""One duration format for the CLI, the web UI and reports."""

from __future__ import annotations

import pytest

from flightlog._format import duration, span


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (None, "-"),
        (0, "0 ns"),
        (840, "840 ns"),
        (3_499, "3.5 µs"),
        (850_000, "850 µs"),
        (999_600, "1.0 ms"),  # never "1000 µs"
        (2_300_000, "2.3 ms"),
        (12_000_000, "12 ms"),
        (999_960_000, "1.0 s"),
        (45_000_000_000, "45 s"),
        (125_000_000_000, "2 min 05 s"),
        (3_720_000_000_000, "1 h 02 min"),
    ],
)
def test_duration(ns: int | None, text: str) -> None:
    assert duration(ns) == text


def test_every_surface_uses_the_one_format() -> None:
    from flightlog.cli._common import fmt_duration
    from flightlog.forensics.report import _dur
    from flightlog.reliability.board_render import _dur as board_duration
    from flightlog.server.ui._html import duration as ui_duration

    for ns in (None, 840, 999_600, 2_300_000, 125_000_000_000):
        assert fmt_duration(ns) == _dur(ns) == ui_duration(ns) == duration(ns)
        assert board_duration(ns) == duration(ns)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (45e9, "45 s"),
        (90 * 60e9, "90 min"),
        (3600e9, "60 min"),
        (36 * 3600e9, "36 h"),
        (28 * 86_400e9, "28 days"),
    ],
)
def test_span(ns: float, text: str) -> None:
    assert span(ns) == text


def test_ages_and_windows_use_the_one_span_format() -> None:
    from flightlog.detect.builtin import _age
    from flightlog.reliability.burn_alerts import _days

    for ns in (45e9, 3600e9, 28 * 86_400e9):
        assert _age(ns) == _days(int(ns)) == span(ns)
