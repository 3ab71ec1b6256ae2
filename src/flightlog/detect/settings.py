"""The ``[detect]`` section of ``flightlog.toml``, declared once (see ``detect.registry``)::

[detect]
detectors = ["mypackage.checks:no_refund_over_limit"]   # module:function
disable = ["latency"]                                    # built-ins to switch off

[detect.budgets]            # all workflows
tokens = 50000
[detect.budgets.claims-triage]
cost = 0.50
steps = 20
"""

from __future__ import annotations

from flightlog.config import Config, Section


class Budget(Section, frozen=True):
    """A workflow's budget: ``[detect.budgets.WORKFLOW]``."""

    tokens: float | None = None
    cost: float | None = None
    steps: float | None = None


class DetectSection(Section, frozen=True):
    """``[detect]``: ``budgets`` holds the global ``tokens``/``cost``/``steps`` and one table
    per workflow."""

    detectors: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    budgets: dict[str, float | Budget] = {}


def detect_section(cfg: Config) -> DetectSection:
    """``[detect]`` of a loaded configuration, checked once (errors name the line)."""
    return cfg.typed(DetectSection, "detect")
