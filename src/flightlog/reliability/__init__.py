"""How reliable is it? Per-step and end-to-end reliability with honest intervals.

::

    from flightlog.reliability import reliability
    report = reliability(store, since_ns=..., workflow="claims-triage")
    for wf in report.workflows:
        wf.end_to_end.value, wf.end_to_end.interval, wf.product, wf.gap, wf.by_owner

Modules: ``stats`` (Wilson intervals, pass^k, failures per 1,000), ``tally`` (counting
outcomes per workflow and hour, with kept hours for speed), ``figures`` (the figures of a
workflow), ``settings`` (the ``[reliability]`` and ``[[slo]]`` sections of flightlog.toml),
``slo`` (error budgets and burn-rate alerts), ``render`` (text, HTML with SVG charts).
See docs/reliability.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightlog.reliability.figures import Owners, WorkflowReliability, workflow_figures
from flightlog.reliability.stats import Rate, wilson
from flightlog.reliability.tally import DAY_NS, count, refresh

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

__all__ = [
    "DAY_NS",
    "Rate",
    "ReliabilityReport",
    "WorkflowReliability",
    "refresh",
    "reliability",
    "wilson",
]


@dataclass
class ReliabilityReport:
    """The figures of every workflow (or one) over a window of run start times."""

    since_ns: int
    until_ns: int
    workflows: list[WorkflowReliability] = field(default_factory=list)
    kept_hours: int = 0  # hours read from kept counts (speed only; figures are the same)
    counted_hours: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "since_ns": self.since_ns,
            "until_ns": self.until_ns,
            "workflows": [w.to_dict() for w in self.workflows],
        }


def reliability(
    store: StoreReader,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    workflow: str | None = None,
    owners: Owners | None = None,
    cost_per_failure: Callable[[str], float | None] | dict[str, float] | float | None = None,
) -> ReliabilityReport:
    """Reliability of ``workflow`` (or of every workflow) over runs started in
    [``since_ns``, ``until_ns``) (default: the last 30 days up to now). Reads only.

    ``cost_per_failure`` is one figure for every workflow, one per workflow name, or a
    function of the workflow name;
    ``owners(workflow, step, agent, kind)`` names owners for root causes recorded without one.
    """
    until = time.time_ns() if until_ns is None else until_ns
    since = until - 30 * DAY_NS if since_ns is None else since_ns
    tally = count(store, since_ns=since, until_ns=until, workflow=workflow)
    names = tally.workflows()
    if workflow is not None:
        names = [workflow]
    out = ReliabilityReport(since, until, kept_hours=tally.from_cache, counted_hours=tally.counted)
    for name in names:
        if callable(cost_per_failure):
            cpf = cost_per_failure(name)
        elif isinstance(cost_per_failure, dict):
            cpf = cost_per_failure.get(name)
        else:
            cpf = cost_per_failure
        out.workflows.append(workflow_figures(tally, name, owners=owners, cost_per_failure=cpf))
    return out
