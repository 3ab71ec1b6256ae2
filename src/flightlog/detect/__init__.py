"""Detectors: plain callables over a run (with its workflow's history) that emit findings.

``detect(store, run_id)`` runs every configured detector on a recorded run, stores the new
findings (ids are stable per run, step, detector and kind, so running twice stores nothing
twice) and returns all of the run's findings. The run-end pipeline's ``detect`` stage
(``flightlog.pipeline``) does the same, once, for every run as it ends. See docs/forensics.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Literal, cast, overload

from flightlog.detect.context import History, RunContext, finding_id, history_cache
from flightlog.detect.registry import configured_detectors, detector, load_config
from flightlog.model import Batch, Finding
from flightlog.store.base import Store, StoreReader

__all__ = [
    "History",
    "RunContext",
    "detect",
    "detector",
    "finding_id",
    "history_cache",
    "run_detectors",
]

log = logging.getLogger("flightlog.detect")


def run_detectors(
    run: RunContext, detectors: dict[str, Callable[..., Any]] | None = None
) -> list[Finding]:
    """Apply detectors to a run; a detector that raises is reported as a finding, not raised."""
    if detectors is None:
        # The [detect] section read once per run, for the detectors and the budgets alike.
        run.detect_config = load_config()
        detectors = configured_detectors(run.detect_config)
    out: dict[str, Finding] = {}
    for name, fn in detectors.items():
        try:
            produced: Iterable[Any] = fn(run) or ()
            for f in produced:
                if isinstance(f, Finding):
                    out.setdefault(f.id, f)
        except Exception as exc:  # a broken detector must not hide the others' findings
            log.exception("detector %s failed on run %s", name, run.run.id)
            f = run.finding(
                "detect",
                f"broken:{name}",
                f"detector {name} raised {type(exc).__name__}: {exc}",
                severity="info",
                detector_name=name,
            )
            out.setdefault(f.id, f)
    return list(out.values())


@overload
def detect(store: Store, run_id: str, *, write: bool = True) -> list[Finding]: ...
@overload
def detect(store: StoreReader, run_id: str, *, write: Literal[False]) -> list[Finding]: ...
def detect(store: StoreReader, run_id: str, *, write: bool = True) -> list[Finding]:
    """Run the detectors on a stored run; store new findings (``write``, which needs a
    writable ``Store``); return all the run's findings (recorded ones such as failed checks,
    then new ones), ordered by step index."""
    run_id = store.resolve_run_id(run_id)
    ctx = RunContext.load(store, run_id)
    found = run_detectors(ctx)
    known = {f.id for f in ctx.record.findings}
    new = [f for f in found if f.id not in known]
    if write and new:
        cast("Store", store).write(Batch(findings=new))
    allf = ctx.record.findings + new
    order = {s.id: s.index for s in ctx.steps}
    return sorted(allf, key=lambda f: (order.get(f.step_id or "", 0), f.detector, f.id))
