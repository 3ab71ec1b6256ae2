"""Recording, the public surface: runs, steps, checks, usage, annotations, explicit edges.

Split by responsibility: ``context`` (current run and step, ids, internal errors), ``runs``
(``flightlog.run``), ``steps`` (``@flightlog.step``), and here the calls made inside them.
Nothing here raises into user code: an internal failure is logged and counted
(``flightlog.stats()["errors"]``) and the user's function runs exactly as it would without
Flightlog.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
import uuid
from typing import Any

from flightlog.model import Edge, Finding
from flightlog.sdk import state
from flightlog.sdk.context import F, _internal_error, _json_safe, _run, _step
from flightlog.sdk.runs import ActiveRun, run
from flightlog.sdk.steps import ActiveStep, StepSpec, _Binder, replay_hook, step

__all__ = [
    "ActiveRun",
    "ActiveStep",
    "StepSpec",
    "_Binder",
    "annotate",
    "check",
    "current_run",
    "current_step",
    "edge",
    "replay_hook",
    "run",
    "step",
    "usage",
    "wrap",
]

log = logging.getLogger("flightlog")


def current_run() -> ActiveRun | None:
    """The run recorded in this context, or None."""
    return _run.get()


def current_step() -> ActiveStep | None:
    """The step recorded in this context, or None."""
    return _step.get()


def check(ok: Any, name: str, message: str = "", severity: str = "error", **evidence: Any) -> bool:
    """Record the outcome of a check on the current step (or run); returns ``bool(ok)``.

    A failed check becomes a ``Finding`` (detector ``check``) that detection and attribution
    use as evidence of fault. Passing checks are noted on the step's attributes.
    """
    try:
        passed = bool(ok)
    except Exception:
        passed = False
    try:
        active_step = _step.get()
        active_run = _run.get()
        if active_step is not None:
            checks = active_step.record.attributes.setdefault("flightlog.checks", {})
            if isinstance(checks, dict):
                checks[str(name)] = passed
        if passed:
            return True
        run_id = active_run.id if active_run else (active_step.run.id if active_step else None)
        if run_id is None:
            log.warning("flightlog.check(%r) failed outside any run: %s", name, message)
            return False
        w = state.writer()
        if w is not None:
            w.submit(
                Finding(
                    id=uuid.uuid4().hex,
                    run_id=run_id,
                    step_id=active_step.id if active_step else None,
                    detector="check",
                    severity=severity
                    if severity in ("info", "warning", "error", "critical")
                    else "error",
                    message=str(message or f"check {name} failed"),
                    evidence={"check": str(name), **_json_safe(evidence)},
                    created_ns=time.time_ns(),
                    kind="check",
                )
            )
    except Exception:
        _internal_error("recording a check")
    return passed


def usage(
    *,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cost: float | None = None,
    model: str | None = None,
    provider: str | None = None,
) -> None:
    """Record token usage and cost (and the model) on the current step; amounts add up."""
    try:
        active = _step.get()
        if active is None:
            return
        rec = active.record
        if input_tokens is not None:
            rec.input_tokens = (rec.input_tokens or 0) + int(input_tokens)
        if output_tokens is not None:
            rec.output_tokens = (rec.output_tokens or 0) + int(output_tokens)
        if cost is not None:
            rec.cost = (rec.cost or 0.0) + float(cost)
        if model is not None:
            rec.model = str(model)
        if provider is not None:
            rec.provider = str(provider)
    except Exception:
        _internal_error("recording usage")


def annotate(**attributes: Any) -> None:
    """Add free attributes to the current step (or, outside steps, the current run)."""
    active = _step.get()
    if active is not None:
        active.annotate(**attributes)
        return
    r = _run.get()
    if r is not None:
        r.annotate(**attributes)


def edge(
    source: str, target: str | None = None, *, kind: str = "data", detail: str | None = None
) -> None:
    """Declare lineage the automatic capture cannot see: ``source`` step fed ``target``.

    ``target`` defaults to the current step. Step ids come from ``flightlog.current_step().id``.
    """
    try:
        active = _step.get()
        tgt = target or (active.id if active else None)
        r = _run.get() or (active.run if active else None)
        if tgt is None or r is None:
            log.warning("flightlog.edge(%r) outside a step: nothing recorded", source)
            return
        if str(source) == str(tgt):  # current_step().id inside that same step
            log.warning(
                "flightlog.edge(%r): a step cannot feed itself (give the id of an earlier "
                "step); nothing recorded",
                source,
            )
            return
        w = state.writer()
        if w is not None:
            w.submit(Edge(r.id, str(source), str(tgt), kind, "declared", detail))
    except Exception:
        _internal_error("declaring an edge")


def wrap(fn: F) -> F:
    """Carry the current run and step into ``fn`` when it runs on another thread.

    Threads do not inherit ``contextvars``: a step called from a ``ThreadPoolExecutor``
    inside a run would otherwise start an implicit run of its own. Use
    ``pool.submit(flightlog.wrap(search), query)`` (or ``pool.map(flightlog.wrap(f), ...)``).
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def in_context(*args: Any, **kwargs: Any) -> Any:
        return captured.copy().run(fn, *args, **kwargs)

    return in_context  # type: ignore[return-value]
