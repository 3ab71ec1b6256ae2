"""How Flightlog writes numbers for people: one duration format for the CLI, the web UI and
reports (``duration``), and one for lengths of time spoken of roughly, such as a value's age or
an SLO window (``span``)."""

from __future__ import annotations

_UNITS = ((1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs"))


def duration(ns: int | float | None) -> str:
    """``840 ns``, ``3.5 µs``, ``850 µs``, ``2.3 ms``, ``12 ms``, ``1.3 s``, ``45 s``,
    ``2 min 05 s``, ``1 h 02 min``: two or three significant digits, a space before the
    unit, and never ``1000`` of a unit (that is one of the next)."""
    if ns is None:
        return "-"
    ns = max(0, int(ns))
    if ns >= 60_000_000_000:
        seconds = round(ns / 1e9)
        if seconds < 3600:
            return f"{seconds // 60} min {seconds % 60:02d} s"
        minutes = round(seconds / 60)
        return f"{minutes // 60} h {minutes % 60:02d} min"
    if ns < 1_000:
        return f"{ns} ns"
    for i, (size, unit) in enumerate(_UNITS):
        if ns >= size:
            value = ns / size
            text = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
            if text == "1000" and i > 0:  # rounds up into the next unit
                return f"1.0 {_UNITS[i - 1][1]}"
            return f"{text} {unit}"
    return f"{ns} ns"  # pragma: no cover - ns >= 1_000 always matches a unit


def span(ns: int | float) -> str:
    """A length of time, roughly, in the largest fitting unit: ``45 s``, ``12 min``, ``5 h``,
    ``28 days`` (up to 2 of a unit stay in the smaller one: ``90 min``, ``36 h``); for ages
    and windows, where ``duration``'s precision would be noise."""
    s = max(0.0, ns / 1e9)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172_800:
        return f"{s / 3600:.0f} h"
    return f"{s / 86_400:.0f} days"
