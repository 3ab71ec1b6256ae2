"""Charts as inline SVG: no script, no external asset, every label escaped.

Used by the web UI's reliability page, ``flightlog reliability --html`` and the board
report. Each function returns one ``<svg>`` element sized for a 1280 px page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

from flightlog.reliability.figures import DayFigures, StepFigures

GREEN, RED, BLUE, GREY = "#1f7a3a", "#b3261e", "#2456b3", "#8a8f99"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def pct(value: float | None, digits: int | None = None) -> str:
    """A rate as a percentage: more digits near 100% where they matter."""
    if value is None:
        return "–"
    if value == 1.0:
        return "100%"
    if digits is None:
        digits = 2 if value >= 0.99 else 1
    return f"{100 * value:.{digits}f}%"


def _floor(values: Sequence[float]) -> float:
    """The y-axis floor: a round percentage below the lowest value (at most 100% wide)."""
    low = min(values, default=0.0)
    for f in (0.99, 0.95, 0.9, 0.8, 0.5):
        if low >= f:
            return f
    return 0.0


def trend(days: Sequence[DayFigures], *, width: int = 760, height: int = 220) -> str:
    """Clean runs per day: a dot per day with its 95% interval as a vertical line."""
    shown = [d for d in days if d.rate.trials]
    if not shown:
        return (
            f"<svg role='img' aria-label='no runs in this window' width='{width}' height='60'>"
            "<text x='10' y='35'>no runs in this window</text></svg>"
        )
    left, right, top, bottom = 56, 16, 14, 34
    floor = _floor([d.rate.interval[0] for d in shown])
    first, last = shown[0].day_ns, shown[-1].day_ns
    span = max(last - first, 1)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(ns: int) -> float:
        return left + (plot_w * (ns - first) / span if last > first else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - floor) / (1 - floor))

    parts = [
        f"<svg role='img' aria-label='clean runs per day with 95% intervals' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}'>"
    ]
    for frac in (0, 0.25, 0.5, 0.75, 1):
        v = floor + (1 - floor) * frac
        parts.append(
            f"<line x1='{left}' x2='{width - right}' y1='{y(v):.1f}' y2='{y(v):.1f}' "
            f"stroke='#e3e6eb'/><text x='{left - 6}' y='{y(v) + 4:.1f}' text-anchor='end' "
            f"fill='{GREY}'>{_e(pct(v, 1 if floor >= 0.9 else 0))}</text>"
        )
    points = []
    for d in shown:
        lo, hi = d.rate.interval
        cx = x(d.day_ns)
        value = d.rate.value or 0.0
        points.append(f"{cx:.1f},{y(value):.1f}")
        label = (
            f"{dt.datetime.fromtimestamp(d.day_ns / 1e9, dt.UTC):%Y-%m-%d}: "
            f"{pct(value)} of {d.rate.trials} runs clean (95% {pct(lo)}–{pct(hi)})"
        )
        parts.append(
            f"<g><title>{_e(label)}</title><line x1='{cx:.1f}' x2='{cx:.1f}' y1='{y(lo):.1f}' "
            f"y2='{y(hi):.1f}' stroke='{BLUE}' stroke-opacity='0.35' stroke-width='5'/>"
            f"<circle cx='{cx:.1f}' cy='{y(value):.1f}' r='3.5' fill='{BLUE}'/></g>"
        )
    if len(points) > 1:
        parts.insert(
            -len(shown),
            f"<polyline points='{' '.join(points)}' fill='none' stroke='{BLUE}' "
            "stroke-width='1.5'/>",
        )
    for ns in sorted({first, last}):
        parts.append(
            f"<text x='{x(ns):.1f}' y='{height - 12}' text-anchor='middle' fill='{GREY}'>"
            f"{dt.datetime.fromtimestamp(ns / 1e9, dt.UTC):%b %d}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def step_bars(
    steps: Sequence[StepFigures],
    *,
    measured: float | None = None,
    product: float | None = None,
    width: int = 760,
) -> str:
    """Conditional success per step as horizontal bars with 95% whiskers; the measured
    end-to-end rate and the product of steps as two reference rows."""
    rows: list[tuple[str, float | None, tuple[float, float] | None, str, str]] = []
    for s in steps:
        lo, hi = s.rate.interval
        label = f"{s.name}: {pct(s.rate.value)} of {s.reached} runs that reached it"
        rows.append((s.name, s.rate.value, (lo, hi), GREEN if s.failed == 0 else BLUE, label))
    if measured is not None:
        rows.append(("end to end (measured)", measured, None, "#1d2330", "measured end to end"))
    if product is not None:
        rows.append(("product of steps", product, None, GREY, "if steps failed independently"))
    if not rows:
        return (
            f"<svg role='img' aria-label='no steps' width='{width}' height='60'>"
            "<text x='10' y='35'>no steps recorded in this window</text></svg>"
        )
    label_w, right, bar_h, gap, top = 190, 70, 16, 8, 8
    height = top + len(rows) * (bar_h + gap) + 24
    floor = _floor([r[2][0] if r[2] else (r[1] or 0.0) for r in rows])
    plot_w = width - label_w - right

    def x(v: float) -> float:
        return label_w + plot_w * (v - floor) / (1 - floor)

    parts = [
        f"<svg role='img' aria-label='success per step with 95% intervals' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}'>"
    ]
    for i, (name, value, band, colour, title) in enumerate(rows):
        yy = top + i * (bar_h + gap)
        short = name if len(name) <= 26 else name[:25] + "…"
        parts.append(
            f"<g><title>{_e(title)}</title><text x='{label_w - 8}' y='{yy + 12}' "
            f"text-anchor='end'>{_e(short)}</text>"
        )
        if value is not None:
            parts.append(
                f"<rect x='{label_w}' y='{yy}' width='{max(x(value) - label_w, 1):.1f}' "
                f"height='{bar_h}' fill='{colour}' fill-opacity='0.8'/>"
                f"<text x='{x(value) + 6:.1f}' y='{yy + 12}'>{_e(pct(value))}</text>"
            )
        if band is not None:
            parts.append(
                f"<line x1='{x(band[0]):.1f}' x2='{x(band[1]):.1f}' y1='{yy + bar_h / 2}' "
                f"y2='{yy + bar_h / 2}' stroke='#1d2330' stroke-width='1.5'/>"
            )
        parts.append("</g>")
    axis_y = height - 8
    parts.append(
        f"<text x='{label_w}' y='{axis_y}' fill='{GREY}'>{_e(pct(floor, 0))}</text>"
        f"<text x='{width - right}' y='{axis_y}' text-anchor='end' fill='{GREY}'>100%</text>"
        "</svg>"
    )
    return "".join(parts)


def share_bars(items: Sequence[tuple[str, float, str]], *, width: int = 760) -> str:
    """Horizontal bars of shares (label, share 0–1, caption)."""
    if not items:
        return ""
    label_w, bar_h, gap, top = 190, 16, 8, 6
    height = top + len(items) * (bar_h + gap) + 6
    plot_w = width - label_w - 200
    parts = [
        f"<svg role='img' aria-label='failure share by root cause' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}'>"
    ]
    for i, (name, share, caption) in enumerate(items):
        yy = top + i * (bar_h + gap)
        w = max(plot_w * share, 1)
        parts.append(
            f"<text x='{label_w - 8}' y='{yy + 12}' text-anchor='end'>{_e(name[:26])}</text>"
            f"<rect x='{label_w}' y='{yy}' width='{w:.1f}' height='{bar_h}' fill='{RED}' "
            f"fill-opacity='0.75'/><text x='{label_w + w + 6:.1f}' y='{yy + 12}'>"
            f"{_e(caption)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
