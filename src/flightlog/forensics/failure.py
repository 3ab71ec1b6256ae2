"""Where a run's failure surfaced: the failure point, and N in "failed at step k of N".

``failure_point`` names the step (the fatal exception's origin, else the step active when the
run failed, else the last step when the workflow itself failed it after every step ended,
else the first failed check or error); ``of_steps`` gives N (declared, else the median of the
workflow's successful runs, else the steps seen); ``failure_position`` answers both from
stored findings, without running detectors (what ``flightlog show`` and the UI print).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from flightlog.detect import RunContext, history_cache
from flightlog.model import FAULT_STATUSES, Finding, RunRecord, Step, severity_rank

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader


def of_steps(ctx: RunContext) -> int:
    """N in "step k of N": declared, else the median of successful runs, else steps seen."""
    if ctx.run.declared_steps:
        return int(ctx.run.declared_steps)
    counts = [
        c
        for rid, c in zip(ctx.history.run_ids, ctx.history.step_counts, strict=False)
        if rid != ctx.run.id
    ]
    if counts:
        return max(
            int(round(statistics.median(counts))),
            max(s.index for s in ctx.steps) if ctx.steps else 0,
        )
    return len(ctx.steps)


def failure_point(ctx: RunContext, findings: list[Finding]) -> tuple[Step | None, str]:
    """Where the failure surfaced, and how we know."""
    run = ctx.run
    by_id = {s.id: s for s in ctx.steps}
    if run.error and run.error.origin_step_id in by_id:
        return by_id[run.error.origin_step_id], f"the {run.error.type} was raised here"
    if run.failed_step_id in by_id:
        s = by_id[run.failed_step_id]
        origin = s.error.origin_step_id if s.error else None
        if origin in by_id and origin != s.id:
            return by_id[origin], f"the {s.error.type if s.error else 'error'} was raised here"
        return s, "the step active when the run failed"
    if (
        run.failed_step_id is None
        and ctx.steps
        and not any(s.status == "error" for s in ctx.steps)
        and all(s.ended_ns is not None for s in ctx.steps)
    ):
        # Failed by the workflow itself (run.fail(), or an exception outside any step) after
        # every step ended normally: it surfaced after the last one. A check that failed on
        # the way is evidence of the cause, not where the run failed.
        last = max(ctx.steps, key=lambda s: s.index)  # the last to start: innermost if nested
        why = f"the {run.error.type} was raised" if run.error else "the run was failed"
        return last, f"{why} after this step, the last to run, ended normally"
    order = {s.id: s.index for s in ctx.steps}
    checks = sorted(
        (
            f
            for f in findings
            if f.detector == "check" and severity_rank(f.severity) >= 2 and f.step_id in by_id
        ),
        key=lambda f: order[f.step_id or ""],
    )
    if checks:
        name = checks[0].evidence.get("check") or checks[0].evidence.get("name")
        return by_id[checks[0].step_id or ""], f"check {name} failed here" if name else (
            "a check failed here"
        )
    if run.error is not None and ctx.steps:
        # Raised outside any step: it surfaced right after the last step that ended.
        ended = [s for s in ctx.steps if s.ended_ns is not None and s.status != "error"]
        if ended and not any(s.status == "error" for s in ctx.steps):
            last = max(ended, key=lambda s: (s.ended_ns or 0, s.index))
            return last, f"the {run.error.type} was raised right after this step"
    errs = [s for s in ctx.steps if s.status == "error"]
    if errs:
        # The deepest error: where it originated rather than where it propagated to.
        own = [
            s for s in errs if not any(c.parent_id == s.id and c.status == "error" for c in errs)
        ]
        s = min(own or errs, key=lambda s: s.index)
        return s, "the first step that ended in error"
    errf = sorted(
        (f for f in findings if severity_rank(f.severity) >= 2 and f.step_id in by_id),
        key=lambda f: order[f.step_id or ""],
    )
    if errf:
        return by_id[errf[0].step_id or ""], "the first error-severity finding"
    if ctx.steps:
        return max(ctx.steps, key=lambda s: s.index), "the last step recorded"
    return None, ""


def failed_sentence(ctx: RunContext) -> str:
    r = ctx.run
    if r.status == "degraded":
        return "the run answered, but errors were handled inside it" + (
            f" ({r.reason})" if r.reason else ""
        )
    if r.reason:
        return f"the run failed: {r.reason}"
    if r.error:
        return f"the run failed with {r.error.type}: {r.error.message}"
    return "the run failed"


def failure_position(store: StoreReader, record: RunRecord) -> tuple[Step | None, int]:
    """Where a run's failure surfaced and N, for "failed at step k of N", by the same rules
    as ``why`` but from the stored findings (no detectors are run). The step is None when
    the run did not fail."""
    run = record.run
    history = None if run.declared_steps else history_cache.get(store, run.workflow)
    ctx = RunContext(store, record, history)
    n = of_steps(ctx)
    if run.status not in FAULT_STATUSES:
        return None, n
    from flightlog.forensics.transcripts import is_conversation

    final = run.attributes.get("conversation.final_step")
    if is_conversation(run) and isinstance(final, int):
        # A conversation fails where it accepted its (wrong) final answer.
        at = next((s for s in ctx.steps if s.index == final), None)
        if at is not None:
            return at, n
    step, _ = failure_point(ctx, record.findings)
    return step, max(n, step.index if step is not None else 0)
