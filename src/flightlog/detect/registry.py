"""User detectors and budgets: the ``flightlog.detector`` decorator and ``flightlog.toml``.

A detector is a plain callable ``detector(run: RunContext) -> Iterable[Finding]``::

    @flightlog.detector
    def no_refund_over_limit(run):
        for step in run.steps:
            if step.name == "price_claim" and (run.output(step) or {}).get("amount", 0) > 10_000:
                yield run.finding("refund_limit", "over_limit", "refund above limit", step=step)

Or in ``flightlog.toml``::

    [detect]
    detectors = ["mypackage.checks:no_refund_over_limit"]
    disable = ["latency"]

    [detect.budgets]            # all workflows
    tokens = 50000
    [detect.budgets.claims-triage]
    cost = 0.50
    steps = 20

This module imports only the standard library (it backs ``flightlog.detector``).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flightlog.errors import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])

_user: dict[str, Callable[..., Any]] = {}
_lock = threading.Lock()


def detector(fn: F | None = None, *, name: str | None = None) -> Any:
    """Register a detector: ``@flightlog.detector`` or ``@flightlog.detector(name="x")``."""

    def register(f: F) -> F:
        if not callable(f):
            raise ConfigurationError(f"detector {f!r} is not callable")
        with _lock:
            _user[name or str(getattr(f, "__name__", repr(f)))] = f
        return f

    return register(fn) if fn is not None else register


def unregister(name: str) -> None:
    with _lock:
        _user.pop(name, None)


def user_detectors() -> dict[str, Callable[..., Any]]:
    with _lock:
        return dict(_user)


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The ``[detect]`` section of flightlog.toml (``$FLIGHTLOG_CONFIG``, else
    ``./flightlog.toml``; ``FLIGHTLOG__DETECT__...`` variables override), empty when absent."""
    from flightlog.config import load_config as load
    from flightlog.detect.settings import detect_section

    cfg = load(path)  # loaded once per change of the file
    detect_section(cfg)  # checked once: a mistake names its line
    section: dict[str, Any] = cfg.section("detect") or {}
    return section


def load_callable(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function."""
    if ":" not in spec:
        raise ConfigurationError(
            f"detector {spec!r} must be written module:function, e.g. mypkg.checks:no_refunds"
        )
    module_name, attr = spec.split(":", 1)
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load detector {spec!r}: {exc}") from exc
    if not callable(fn):
        raise ConfigurationError(f"detector {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def configured_detectors(config: dict[str, Any] | None = None) -> dict[str, Callable[..., Any]]:
    """Built-ins (minus ``disable``), then decorator-registered, then flightlog.toml ones."""
    from flightlog.detect.builtin import BUILTIN

    config = load_config() if config is None else config
    disabled = set(config.get("disable") or [])
    out = {k: v for k, v in BUILTIN.items() if k not in disabled}
    out.update({k: v for k, v in user_detectors().items() if k not in disabled})
    for spec in config.get("detectors") or []:
        out[str(spec)] = load_callable(str(spec))
    return out


def budgets_for(run: Any, config: dict[str, Any] | None = None) -> dict[str, float]:
    """Budgets of a run: flightlog.toml ``[detect.budgets]`` (global, then per workflow), then
    the run's own ``budget.tokens``/``budget.cost``/``budget.steps`` attributes."""
    try:
        config = load_config() if config is None else config
    except ConfigurationError:
        config = {}
    out: dict[str, float] = {}
    section = config.get("budgets") or {}
    if section:  # (none configured: the usual case)
        for key in ("tokens", "cost", "steps"):
            if isinstance(section.get(key), (int, float)):
                out[key] = float(section[key])
        per = section.get(getattr(run, "workflow", ""))
        if isinstance(per, dict):
            for key in ("tokens", "cost", "steps"):
                if isinstance(per.get(key), (int, float)):
                    out[key] = float(per[key])
    attrs = getattr(run, "attributes", {}) or {}
    raw = attrs.get("budget")
    nested: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for key, name in _BUDGET_ATTRIBUTES:
        v = attrs.get(name, nested.get(key))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


_BUDGET_ATTRIBUTES = (
    ("tokens", "budget.tokens"),
    ("cost", "budget.cost"),
    ("steps", "budget.steps"),
)
