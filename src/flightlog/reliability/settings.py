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
from typing import Annotated, Any

import msgspec

from flightlog._durations import Duration
from flightlog.config import Config, Section, load_config
from flightlog.errors import ConfigurationError
from flightlog.reliability.tally import DAY_NS


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


class WorkflowCost(Section, frozen=True):
    """``[reliability.workflows.NAME]``."""

    cost_per_failure: float | None = None


class ReliabilitySection(Section, frozen=True):
    """``[reliability]``, as written."""

    window: Duration = Duration(30 * DAY_NS)
    cost_per_failure: float | None = None
    currency: str = ""
    workflows: dict[str, WorkflowCost] = {}


class SLOSection(Section, frozen=True):
    """One ``[[slo]]``, as written."""

    workflow: str = ""
    target: float | None = None
    window: Duration = Duration(28 * DAY_NS)
    step: str | None = None
    agent: str | None = None
    min_runs: Annotated[int, msgspec.Meta(ge=1)] = 20
    name: str | None = None
    owner: str | None = None


class ReliabilityFile(msgspec.Struct, kw_only=True, frozen=True):
    reliability: ReliabilitySection = ReliabilitySection()
    slo: tuple[SLOSection, ...] | SLOSection = ()


def reliability_settings(cfg: Config) -> ReliabilitySettings:
    """Validate the sections (errors name the line), once per loaded configuration."""
    return cfg.derive("reliability", lambda: _validate(cfg))


def _validate(cfg: Config) -> ReliabilitySettings:
    f = cfg.typed(ReliabilityFile)
    sec = f.reliability
    out = ReliabilitySettings(
        window_ns=int(sec.window), cost_per_failure=sec.cost_per_failure, currency=sec.currency
    )
    for name, wf in sec.workflows.items():
        if wf.cost_per_failure is not None:
            out.by_workflow[name] = wf.cost_per_failure
    slos = (f.slo,) if isinstance(f.slo, SLOSection) else f.slo
    seen: set[str] = set()
    for i, raw in enumerate(slos):
        where = cfg.where("slo", i)
        if not raw.workflow:
            raise ConfigurationError(f'{where}: [[slo]] needs workflow = "..."')
        if raw.target is None:
            raise ConfigurationError(f"{where}: [[slo]] needs target = 0.99 (a share of good runs)")
        if not 0.0 < raw.target < 1.0:
            raise ConfigurationError(
                f"{cfg.where('slo', i, 'target')}: target must be between 0 and 1 "
                f"(0.99 means 99% good), got {raw.target}"
            )
        if raw.step and raw.agent:
            raise ConfigurationError(f"{where}: an [[slo]] names a step or an agent, not both")
        name = raw.name or (
            raw.workflow
            + (f"/{raw.step}" if raw.step else "")
            + (f"/{raw.agent}" if raw.agent else "")
        )
        if name in seen:
            raise ConfigurationError(f"{where}: a second SLO named {name!r}; give it a name")
        seen.add(name)
        out.slos.append(
            SLO(
                name=name,
                workflow=raw.workflow,
                target=raw.target,
                window_ns=int(raw.window),
                step=raw.step,
                agent=raw.agent,
                min_runs=raw.min_runs,
                owner=raw.owner,
                line=cfg.line_of("slo", i),
            )
        )
    return out


def load_reliability_settings(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> ReliabilitySettings:
    return reliability_settings(load_config(path, environ=environ))


def owner_resolver(path: str | os.PathLike[str] | None = None) -> Any:
    """``owners(workflow, step, agent, kind)`` from the ``[[owners]]`` rules (asked as
    ``respond.owners.owner_query`` asks, so a ``tool =`` rule names a tool step's owner), or
    None when the configuration has none (or the response sections do not validate)."""
    from flightlog.respond.config import load_respond_config
    from flightlog.respond.owners import owner_query, resolve_owner

    try:
        config = load_respond_config(path)
    except ConfigurationError:
        return None
    if not config.rules:
        return None

    def owners(
        workflow: str, step: str | None, agent: str | None, kind: str | None = None
    ) -> str | None:
        try:
            query = owner_query(workflow, step=step, agent=agent, kind=kind)
            return resolve_owner(config, query).team
        except ConfigurationError:
            return None

    return owners
