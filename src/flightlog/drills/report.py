"""What a drill found: per injected fault, whether detection, attribution and paging caught
it (``FaultCheck``), the drill's figures (``DrillReport``), and the text ``flightlog drill``
prints (``text``)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultCheck:
    """What became of one run with an injected fault."""

    run_id: str
    injected: list[dict[str, Any]]
    expect_root: str
    expect_owner: str | None
    status: str = "missing"
    detected: bool = False
    failure_point: str | None = None
    failure_point_ok: bool = False
    root: str | None = None
    root_ok: bool = False
    paged: bool = False
    incident: int | None = None
    mttd_ns: int | None = None
    alert_latency_ns: int | None = None
    misses: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.misses

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"ok": self.ok}


@dataclass
class DrillReport:
    name: str
    spec: dict[str, Any]
    started_ns: int
    ended_ns: int = 0
    checks: list[FaultCheck] = field(default_factory=list)
    controls: int = 0
    control_failures: list[str] = field(default_factory=list)
    no_effect: list[str] = field(default_factory=list)  # runs whose faults changed nothing
    live: bool = False
    store: str = ""
    errors: list[str] = field(default_factory=list)

    def _rate(self, pred: Callable[[FaultCheck], bool]) -> float | None:
        return sum(1 for c in self.checks if pred(c)) / len(self.checks) if self.checks else None

    @property
    def detection_rate(self) -> float | None:
        return self._rate(lambda c: c.detected)

    @property
    def attribution_accuracy(self) -> float | None:
        return self._rate(lambda c: c.root_ok)

    @property
    def paged_rate(self) -> float | None:
        return self._rate(lambda c: c.paged)

    @staticmethod
    def _median(values: list[int | None]) -> float | None:
        got = [v for v in values if v is not None]
        return float(statistics.median(got)) if got else None

    @property
    def mttd_ns(self) -> float | None:
        return self._median([c.mttd_ns for c in self.checks])

    @property
    def alert_latency_ns(self) -> float | None:
        return self._median([c.alert_latency_ns for c in self.checks])

    @property
    def passed(self) -> bool:
        return (
            bool(self.checks)
            and all(c.ok for c in self.checks)
            and not self.control_failures
            and not self.errors
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "started_ns": self.started_ns,
            "ended_ns": self.ended_ns,
            "live": self.live,
            "store": self.store,
            "faults_injected": len(self.checks),
            "detection_rate": self.detection_rate,
            "attribution_accuracy": self.attribution_accuracy,
            "paged_rate": self.paged_rate,
            "mttd_ns": self.mttd_ns,
            "alert_latency_ns": self.alert_latency_ns,
            "controls": self.controls,
            "control_failures": self.control_failures,
            "no_effect": self.no_effect,
            "errors": self.errors,
            "checks": [c.to_dict() for c in self.checks],
            "spec": self.spec,
        }


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _secs(ns: float | None) -> str:
    if ns is None:
        return "–"
    return f"{ns / 1e6:.0f} ms" if ns < 1e9 else f"{ns / 1e9:.2f} s"


def text(report: DrillReport) -> str:
    """The drill report for the terminal: figures, then every miss."""
    lines = [
        f"Drill {report.name!r}: {'PASSED' if report.passed else 'FAILED'}",
        f"  faults injected: {len(report.checks)} (control runs without a fault: "
        f"{report.controls})",
        f"  detected: {_pct(report.detection_rate)}   attributed to the injected step: "
        f"{_pct(report.attribution_accuracy)}   owner paged: {_pct(report.paged_rate)}",
        f"  median time to detect: {_secs(report.mttd_ns)}   median alert latency: "
        f"{_secs(report.alert_latency_ns)}"
        + ("   (live channels)" if report.live else "   (local receiver)"),
    ]
    misses = [c for c in report.checks if not c.ok]
    if misses:
        lines.append(f"  misses ({len(misses)}):")
        for c in misses:
            what = ", ".join(f"{i['kind']} at {i['step']}" for i in c.injected)
            lines.append(f"    run {c.run_id[:12]} ({what}): " + "; ".join(c.misses))
    for rid in report.control_failures:
        lines.append(f"  control run {rid[:12]} failed without an injected fault")
    if report.no_effect:
        lines.append(
            f"  {len(report.no_effect)} run(s) where the injected fault left the result unchanged "
            "(not counted): " + ", ".join(r[:12] for r in report.no_effect[:10])
        )
    lines.extend(f"  error: {e}" for e in report.errors)
    return "\n".join(lines)
