"""Reliability figures of a workflow, computed from counts (``tally``).

Per step: the **conditional success** rate, successes out of the runs that *reached* the
step. Per workflow: the **measured** end-to-end rate (clean runs out of counted runs), the
**product-of-steps** estimate (what the per-step rates predict if steps failed
independently) and the **gap** = measured − product. A positive gap says failures come
together: one fault makes several steps of the same run fail (a bad retrieval breaks the
answer and the check after it), so multiplying step rates overstates the damage. A negative
gap says runs fail without any step failing (a run-level check or timeout), which the steps
cannot see.

Every rate has a 95% Wilson interval (``stats``). pass^k is the chance that k runs in a row
are all clean. Expected failures per 1,000 runs come with an upper bound from the interval.
Failure share is by **root cause** (the step, agent and owner the stored attribution
blames), not by where the failure surfaced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flightlog.reliability.stats import Rate, pass_k, per_thousand
from flightlog.reliability.tally import DAY_NS, Bucket, Tally

PASS_K = (3, 5, 10)
# (workflow, step, agent, step kind) -> owner (``respond.owners.owner_query``)
Owners = Callable[[str, str | None, str | None, str | None], str | None]


@dataclass
class StepFigures:
    name: str
    reached: int
    failed: int
    cost: float
    cost_not_clean: float
    first_index: int = 0  # the lowest index the step had in a run (for ordering)

    @property
    def rate(self) -> Rate:
        return Rate(self.reached - self.failed, self.reached)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "reached": self.reached,
            "failed": self.failed,
            "conditional_success": self.rate.to_dict(),
            "cost": self.cost,
            "cost_in_failed_runs": self.cost_not_clean,
        }


@dataclass
class Share:
    """Failures blamed on one root cause (a step, an agent or an owner), with their cost.

    ``name`` None collects the failures that have no stored attribution."""

    name: str | None
    failures: int
    share: float
    cost: float
    agent: str | None = None  # for a step: its agent and owner
    owner: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "failures": self.failures,
            "share": self.share,
            "cost": self.cost,
        }
        if self.agent is not None or self.owner is not None:
            out["agent"], out["owner"] = self.agent, self.owner
        return out


@dataclass
class DayFigures:
    day_ns: int  # midnight UTC
    rate: Rate
    degraded: int

    def to_dict(self) -> dict[str, Any]:
        return {"day_ns": self.day_ns, "degraded": self.degraded, **self.rate.to_dict()}


@dataclass
class WorkflowReliability:
    """Every figure of one workflow over one window (see the module docstring)."""

    workflow: str
    since_ns: int
    until_ns: int
    statuses: dict[str, int]
    end_to_end: Rate
    steps: list[StepFigures]
    product: float | None
    product_interval: tuple[float, float]
    by_step: list[Share]
    by_agent: list[Share]
    by_owner: list[Share]
    days: list[DayFigures]
    cost_total: float
    cost_of_failures: float
    cost_per_failure: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def gap(self) -> float | None:
        m = self.end_to_end.value
        return None if m is None or self.product is None else m - self.product

    @property
    def degraded(self) -> int:
        return self.statuses.get("degraded", 0)

    @property
    def unattributed(self) -> int:
        return sum(s.failures for s in self.by_step if s.name is None)

    @property
    def business_cost(self) -> float | None:
        """Failures × the configured cost per failure (None when none is configured)."""
        if self.cost_per_failure is None:
            return None
        return self.end_to_end.failures * self.cost_per_failure

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.product_interval
        return {
            "workflow": self.workflow,
            "since_ns": self.since_ns,
            "until_ns": self.until_ns,
            "runs": dict(sorted(self.statuses.items())),
            "end_to_end": self.end_to_end.to_dict(),
            "product_of_steps": {"value": self.product, "low": lo, "high": hi},
            "gap": self.gap,
            "pass_k": [pass_k(self.end_to_end, k) for k in PASS_K],
            "failures_per_1000": per_thousand(self.end_to_end),
            "steps": [s.to_dict() for s in self.steps],
            "failure_share": {
                "by_step": [s.to_dict() for s in self.by_step],
                "by_agent": [s.to_dict() for s in self.by_agent],
                "by_owner": [s.to_dict() for s in self.by_owner],
                "unattributed": self.unattributed,
            },
            "cost": {
                "total": self.cost_total,
                "of_failed_runs": self.cost_of_failures,
                "per_failure_configured": self.cost_per_failure,
                "of_failures_configured": self.business_cost,
            },
            "days": [d.to_dict() for d in self.days],
            "notes": self.notes,
        }


RootKey = tuple[str | None, str | None, str | None]


def _shares(roots: dict[RootKey, list[float]], field_: int, total: int) -> list[Share]:
    """Group root causes by step (0), agent (1) or owner (2)."""
    acc: dict[str | None, list[Any]] = {}
    for key, (n, cost) in roots.items():
        if key[0] is None:
            name = None
        else:
            name = key[field_] or ("(no agent)" if field_ == 1 else "(no owner)")
        mine = acc.setdefault(name, [0, 0.0, key[1], key[2]])
        mine[0] += n
        mine[1] += cost
    out = [
        Share(
            name,
            int(v[0]),
            (v[0] / total) if total else 0.0,
            float(v[1]),
            agent=v[2] if field_ == 0 and name is not None else None,
            owner=v[3] if field_ == 0 and name is not None else None,
        )
        for name, v in acc.items()
    ]
    out.sort(key=lambda s: (s.name is None, -s.failures, str(s.name)))
    return out


def _product(steps: list[StepFigures]) -> tuple[float | None, tuple[float, float]]:
    """The product of conditional success rates, and the product of the interval ends (a
    conservative band: each factor at its own bound)."""
    counted = [s for s in steps if s.reached]
    if not counted:
        return None, (0.0, 1.0)
    value = math.prod(s.rate.value or 0.0 for s in counted)
    lo = math.prod(s.rate.interval[0] for s in counted)
    hi = math.prod(s.rate.interval[1] for s in counted)
    return value, (lo, hi)


def workflow_figures(
    tally: Tally,
    workflow: str,
    *,
    owners: Owners | None = None,
    cost_per_failure: float | None = None,
) -> WorkflowReliability:
    """The figures of ``workflow`` over the tally's window. ``owners`` names the owner of a
    root-cause step that recorded none (from ``[[owners]]`` rules)."""
    total: Bucket = tally.total(workflow)
    e2e = Rate(total.clean, total.trials)
    steps = [
        StepFigures(name, int(v[0]), int(v[1]), float(v[2]), float(v[3]), int(v[4]))
        for name, v in total.steps.items()
    ]
    steps.sort(key=lambda s: (s.first_index, -s.reached, s.name))
    product, band = _product(steps)
    roots: dict[RootKey, list[float]] = {}
    for (step, agent, owner), vals in total.roots.items():
        if step is not None and owner is None and owners is not None:
            owner = owners(workflow, step, agent, total.root_kinds.get(step))
        mine = roots.setdefault((step, agent, owner), [0, 0.0])
        mine[0] += vals[0]
        mine[1] += vals[1]
    failures = e2e.failures
    days = []
    for day, b in sorted(tally.by_day(workflow).items()):
        days.append(
            DayFigures(day * DAY_NS, Rate(b.clean, b.trials), b.statuses.get("degraded", 0))
        )
    notes = []
    if total.statuses.get("unknown"):
        notes.append(
            f"{total.statuses['unknown']} run(s) with unknown outcome are left out of every rate"
        )
    if total.statuses.get("running"):
        notes.append(f"{total.statuses['running']} run(s) still running are left out")
    if total.statuses.get("degraded"):
        notes.append(
            f"{total.statuses['degraded']} degraded run(s) (answered, but errors were "
            "swallowed) count as failures"
        )
    return WorkflowReliability(
        workflow=workflow,
        since_ns=tally.since_ns,
        until_ns=tally.until_ns,
        statuses=dict(total.statuses),
        end_to_end=e2e,
        steps=steps,
        product=product,
        product_interval=band,
        by_step=_shares(roots, 0, failures),
        by_agent=_shares(roots, 1, failures),
        by_owner=_shares(roots, 2, failures),
        days=days,
        cost_total=total.cost_total,
        cost_of_failures=total.cost_not_clean,
        cost_per_failure=cost_per_failure,
        notes=notes,
    )
