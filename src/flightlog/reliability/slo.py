"""Service-level objectives: error budgets and multiwindow, multi-burn-rate alerts.

An SLO (``[[slo]]`` in flightlog.toml, see ``settings``) says what share of events must be
good over a period (``window``, e.g. 28 days):

- a **workflow** SLO counts runs: good = clean (succeeded), bad = failed or degraded;
- a **step** SLO counts the runs that reached the step: bad = the step failed in the run
  (the step's conditional success, as in ``figures``);
- an **agent** SLO counts runs: bad = failed runs whose stored root cause is a step of the
  agent ("runs not broken by this agent").

The **error budget** is 1 − target; *budget remaining* = 1 − (bad share / budget) over the
SLO window (below 0 when the budget is spent). The **burn rate** over a window is the bad
share in it divided by the budget: 1 spends the budget exactly over the period.

Alerts follow the Google SRE workbook ("Alerting on SLOs", multiwindow, multi-burn-rate):
a rule fires when the burn rate exceeds its factor over both its long and its short window
(the short one makes it reset quickly once the problem is fixed):

========  ======  ============  ==============
severity  factor  long window   short window
========  ======  ============  ==============
page      14.4    1 hour        5 minutes
page      6       6 hours       30 minutes
ticket    1       3 days        6 hours
========  ======  ============  ==============

A **minimum-volume guard** keeps a handful of runs from paging anyone: a rule fires only
when its long window holds at least ``min_runs`` events. Windows are over run start times.

Alerts go through the response layer (``flightlog.respond``): a firing SLO opens an
incident (fingerprint ``slo/<name>/<severity>``) whose alert is routed, grouped, silenced,
inhibited and delivered through the outbox like any other, paged (``page``) or notified
(``ticket``) to the owner of the SLO; when no rule of that severity fires any more, the
incident resolves and the receivers hear so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightlog.reliability.settings import SLO
from flightlog.reliability.tally import COUNTED, NOT_CLEAN, count
from flightlog.store import core

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

MIN = 60 * 1_000_000_000
HOUR = 60 * MIN


@dataclass(frozen=True)
class BurnRule:
    severity: str  # "page" | "ticket"
    factor: float
    long_ns: int
    short_ns: int

    @property
    def label(self) -> str:
        return f"{self.factor:g}x over {_span(self.long_ns)}/{_span(self.short_ns)}"


RULES = (
    BurnRule("page", 14.4, HOUR, 5 * MIN),
    BurnRule("page", 6.0, 6 * HOUR, 30 * MIN),
    BurnRule("ticket", 1.0, 72 * HOUR, 6 * HOUR),
)


def _span(ns: int) -> str:
    if ns % (24 * HOUR) == 0:
        return f"{ns // (24 * HOUR)}d"
    if ns % HOUR == 0:
        return f"{ns // HOUR}h"
    return f"{ns // MIN}m"


@dataclass
class Window:
    span_ns: int
    bad: int
    valid: int
    budget: float

    @property
    def burn(self) -> float | None:
        if not self.valid:
            return None
        return (self.bad / self.valid) / self.budget

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": _span(self.span_ns),
            "bad": self.bad,
            "valid": self.valid,
            "burn_rate": self.burn,
        }


@dataclass
class Firing:
    rule: BurnRule
    long: Window
    short: Window

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.rule.severity,
            "rule": self.rule.label,
            "long": self.long.to_dict(),
            "short": self.short.to_dict(),
        }


@dataclass
class SLOStatus:
    slo: SLO
    now_ns: int
    period: Window
    windows: dict[int, Window] = field(default_factory=dict)
    firing: list[Firing] = field(default_factory=list)
    guarded: list[str] = field(default_factory=list)  # rules held back by the volume guard

    @property
    def sli(self) -> float | None:
        p = self.period
        return None if not p.valid else 1 - p.bad / p.valid

    @property
    def budget_remaining(self) -> float | None:
        burn = self.period.burn
        return None if burn is None else 1.0 - burn

    @property
    def met(self) -> bool | None:
        sli = self.sli
        return None if sli is None else sli >= self.slo.target

    def severities(self) -> set[str]:
        return {f.rule.severity for f in self.firing}

    def to_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo.to_dict(),
            "sli": self.sli,
            "met": self.met,
            "error_budget": self.slo.budget,
            "budget_remaining": self.budget_remaining,
            "period": self.period.to_dict(),
            "burn_rates": [w.to_dict() for _, w in sorted(self.windows.items())],
            "firing": [f.to_dict() for f in self.firing],
            "held_by_volume_guard": self.guarded,
        }


def _events(store: StoreReader, slo: SLO, since: int, until: int) -> tuple[int, int]:
    """(bad, valid) events of the SLO among runs started in [since, until)."""
    if slo.step is None and slo.agent is None:
        with store.read() as tx:
            by = core.status_counts(tx, slo.workflow, since, until)
        return sum(by.get(s, 0) for s in NOT_CLEAN), sum(by.get(s, 0) for s in COUNTED)
    total = count(store, since_ns=since, until_ns=until, workflow=slo.workflow).total(slo.workflow)
    if slo.step is not None:
        v = total.steps.get(slo.step)
        return (int(v[1]), int(v[0])) if v else (0, 0)
    bad = sum(
        int(n)
        for (step, agent, _), (n, _) in total.roots.items()
        if step is not None and agent == slo.agent
    )
    return bad, total.trials


def evaluate(store: StoreReader, slo: SLO, now_ns: int, *, period: bool = True) -> SLOStatus:
    """The SLO's status at ``now_ns``: SLI, budget remaining, burn rates, firing rules.

    With ``period=False`` the whole SLO window (for the SLI and the budget) is counted only
    when a rule fires: the periodic evaluation then reads at most the last 3 days."""
    status = SLOStatus(slo, now_ns, Window(slo.window_ns, 0, 0, slo.budget))
    for span in sorted({r.long_ns for r in RULES} | {r.short_ns for r in RULES}):
        b, v = _events(store, slo, now_ns - span, now_ns)
        status.windows[span] = Window(span, b, v, slo.budget)
    for rule in RULES:
        long, short = status.windows[rule.long_ns], status.windows[rule.short_ns]
        if long.burn is None or short.burn is None:
            continue
        if long.burn > rule.factor and short.burn > rule.factor:
            if long.valid < slo.min_runs:
                status.guarded.append(
                    f"{rule.label}: {long.valid} run(s) in {_span(rule.long_ns)}, fewer than "
                    f"min_runs = {slo.min_runs}"
                )
                continue
            status.firing.append(Firing(rule, long, short))
    if period or status.firing:
        bad, valid = _events(store, slo, now_ns - slo.window_ns, now_ns)
        status.period = Window(slo.window_ns, bad, valid, slo.budget)
    return status


def evaluate_all(
    store: StoreReader, slos: list[SLO], now_ns: int, *, period: bool = True
) -> list[SLOStatus]:
    return [evaluate(store, s, now_ns, period=period) for s in slos]
