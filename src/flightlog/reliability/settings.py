"""The ``[reliability]`` and ``[[slo]]`` sections of ``flightlog.toml``.

::

    [reliability]
    window = "30d"                 # the default window of `flightlog reliability`
    cost_per_failure = 12.0        # what one failed run costs the business (any currency)
    currency = "EUR"               # shown next to costs
    [reliability.workflows.claims-triage]
    cost_per_failure = 40.0        # per workflow

    [[slo]]                        # one per objective
    workflow = "claims-triage"
    target = 0.99                  # share of good runs
    window = "28d"                 # the SLO period the error budget is counted over
    step = "search_policy"         # optional: the step's conditional success
    agent = "retriever"            # optional: runs not broken by this agent
    min_runs = 20                  # minimum volume before a burn-rate alert may fire
    name = "claims-search"         # optional (default: workflow[/step|agent])
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flightlog.config import Config, load_config
from flightlog.errors import ConfigurationError
from flightlog.reliability.tally import DAY_NS

SLO_KEYS = {"name", "workflow", "step", "agent", "target", "window", "min_runs", "owner"}


@dataclass(frozen=True)
class SLO:
    name: str
    workflow: str
    target: float
    window_ns: int
    step: str | None = None
    agent: str | None = None
    min_runs: int = 20
    owner: str | None = None  # who is told (default: the owner of the step/agent/workflow)
    line: int | None = None

    @property
    def budget(self) -> float:
        """The error budget: the share of bad events the target allows."""
        return 1.0 - self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workflow": self.workflow,
            "step": self.step,
            "agent": self.agent,
            "target": self.target,
            "window_ns": self.window_ns,
            "min_runs": self.min_runs,
            "owner": self.owner,
        }


@dataclass
class ReliabilitySettings:
    window_ns: int = 30 * DAY_NS
    cost_per_failure: float | None = None
    currency: str = ""
    by_workflow: dict[str, float] = field(default_factory=dict)
    slos: list[SLO] = field(default_factory=list)

    def cost_for(self, workflow: str) -> float | None:
        """The configured cost of one failed run of ``workflow`` (None: not configured)."""
        return self.by_workflow.get(workflow, self.cost_per_failure)


def _number(value: Any, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{where}: {what} must be a number, got {value!r}")
    return float(value)


def reliability_settings(cfg: Config) -> ReliabilitySettings:
    """Validate the sections (errors name the line)."""
    from flightlog.respond.config import parse_duration

    out = ReliabilitySettings()
    sec = cfg.data.get("reliability") or {}
    if not isinstance(sec, dict):
        raise ConfigurationError(f"{cfg.where('reliability')}: [reliability] must be a table")
    unknown = set(sec) - {"window", "cost_per_failure", "currency", "workflows"}
    if unknown:
        raise ConfigurationError(
            f"{cfg.where('reliability', sorted(unknown)[0])}: unknown setting "
            f"{sorted(unknown)[0]!r} in [reliability]; expected window, cost_per_failure, "
            "currency, workflows"
        )
    if "window" in sec:
        out.window_ns = parse_duration(sec["window"], cfg.where("reliability", "window"))
    if "cost_per_failure" in sec:
        out.cost_per_failure = _number(
            sec["cost_per_failure"],
            cfg.where("reliability", "cost_per_failure"),
            "cost_per_failure",
        )
    out.currency = str(sec.get("currency", ""))
    for name, wf in (sec.get("workflows") or {}).items():
        if isinstance(wf, dict) and "cost_per_failure" in wf:
            out.by_workflow[str(name)] = _number(
                wf["cost_per_failure"],
                cfg.where("reliability", "workflows", name, "cost_per_failure"),
                "cost_per_failure",
            )
    slos = cfg.data.get("slo") or []
    if isinstance(slos, dict):
        slos = [slos]
    seen: set[str] = set()
    for i, raw in enumerate(slos):
        where = cfg.where("slo", i)
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{where}: each [[slo]] must be a table")
        bad = set(raw) - SLO_KEYS
        if bad:
            raise ConfigurationError(
                f"{where}: unknown setting {sorted(bad)[0]!r} in [[slo]]; expected one of "
                f"{', '.join(sorted(SLO_KEYS))}"
            )
        if not raw.get("workflow"):
            raise ConfigurationError(f'{where}: [[slo]] needs workflow = "..."')
        if "target" not in raw:
            raise ConfigurationError(f"{where}: [[slo]] needs target = 0.99 (a share of good runs)")
        target = _number(raw["target"], cfg.where("slo", i, "target"), "target")
        if not 0.0 < target < 1.0:
            raise ConfigurationError(
                f"{cfg.where('slo', i, 'target')}: target must be between 0 and 1 "
                f"(0.99 means 99% good), got {target}"
            )
        if raw.get("step") and raw.get("agent"):
            raise ConfigurationError(f"{where}: an [[slo]] names a step or an agent, not both")
        window = parse_duration(raw.get("window", "28d"), cfg.where("slo", i, "window"))
        min_runs = raw.get("min_runs", 20)
        if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 1:
            raise ConfigurationError(
                f"{cfg.where('slo', i, 'min_runs')}: min_runs must be a whole number >= 1"
            )
        wf = str(raw["workflow"])
        name = str(
            raw.get("name")
            or wf
            + (f"/{raw['step']}" if raw.get("step") else "")
            + (f"/{raw['agent']}" if raw.get("agent") else "")
        )
        if name in seen:
            raise ConfigurationError(f"{where}: a second SLO named {name!r}; give it a name")
        seen.add(name)
        out.slos.append(
            SLO(
                name=name,
                workflow=wf,
                target=target,
                window_ns=window,
                step=raw.get("step"),
                agent=raw.get("agent"),
                min_runs=min_runs,
                owner=raw.get("owner"),
                line=cfg.line_of("slo", i),
            )
        )
    return out


def load_reliability_settings(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> ReliabilitySettings:
    return reliability_settings(load_config(path, environ=environ))


def owner_resolver(path: str | os.PathLike[str] | None = None) -> Any:
    """``owners(workflow, step, agent)`` from the ``[[owners]]`` rules, or None when the
    configuration has none (or the response sections do not validate)."""
    from flightlog.respond.config import load_respond_config
    from flightlog.respond.owners import OwnerQuery, resolve_owner

    try:
        config = load_respond_config(path)
    except ConfigurationError:
        return None
    if not config.rules:
        return None

    def owners(workflow: str, step: str | None, agent: str | None) -> str | None:
        try:
            return resolve_owner(config, OwnerQuery(workflow, step=step, agent=agent)).team
        except ConfigurationError:
            return None

    return owners
