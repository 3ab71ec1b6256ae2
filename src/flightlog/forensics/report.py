"""Blameless postmortems of a run.

``postmortem(store, run_id)`` gathers everything (attribution, timeline, impact, owners,
similar earlier failures, action items) into a plain dict; ``flightlog.forensics.render``
presents it as Markdown, a self-contained HTML file or JSON (``render``, ``render_markdown``
and ``render_html`` are importable from here too). Captured values are previewed, never
evaluated; the renderers escape them.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from flightlog.detect import detect
from flightlog.detect.context import RunContext, history_cache
from flightlog.forensics.actions import action_items, owner_of
from flightlog.forensics.attribution import Attribution, attribute
from flightlog.forensics.render import _md, render, render_html, render_markdown
from flightlog.ledger.entry import REDACTED
from flightlog.ledger.redact import redacted_runs
from flightlog.model import Finding
from flightlog.store.base import RunQuery

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

PREVIEW_CHARS = 240
SIMILAR_MAX = 10


def _ts(ns: int | None) -> str:
    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _dur(ns: int | None) -> str:
    from flightlog._format import duration

    return duration(ns)


def _preview(value: Any) -> str:
    from flightlog import _json

    text = value if isinstance(value, str) else _json.dumps(value)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _similar(store: StoreReader, run: Any, att: Attribution) -> list[dict[str, Any]]:
    """Earlier failed runs of the same workflow, with their attributed root cause."""
    from flightlog.forensics.ledger import stored_attribution

    earlier = [
        r
        for r in store.list_runs(RunQuery(workflow=run.workflow, status="failed", limit=200))
        if r.id != run.id and r.started_ns <= run.started_ns
    ][:SIMILAR_MAX]
    out = []
    for r in earlier:
        try:
            other = stored_attribution(store, r.id)
        except Exception:
            other = None
        if other is None:
            try:
                other = attribute(
                    RunContext(store, store.get_record(r.id), history_cache.get(store, r.workflow))
                )
            except Exception:
                other = None
        rc = other.root_cause if other else None
        out.append(
            {
                "run_id": r.id,
                "started": _ts(r.started_ns),
                "reason": r.reason,
                "root_cause": rc.to_dict() if rc else None,
                "same_root_cause": bool(rc and att.root_cause and rc.name == att.root_cause.name),
            }
        )
    return out


def postmortem(store: StoreReader, run_id: str) -> dict[str, Any]:
    """Everything a postmortem of ``run_id`` says, as a JSON-ready dict."""
    run_id = store.resolve_run_id(run_id)
    record = store.get_record(run_id)
    ctx = RunContext(store, record, history_cache.get(store, record.run.workflow))
    att = attribute(ctx)
    findings = detect(store, run_id, write=False)
    run = record.run
    steps = record.steps
    by_step: dict[str, list[Finding]] = {}
    for f in findings:
        by_step.setdefault(f.step_id or "", []).append(f)
    root = ctx.step(att.root_cause.id) if att.root_cause else None

    from flightlog.forensics.transcripts import is_conversation

    # An imported conversation has message order, not timing: say so rather than show 0 µs.
    untimed = is_conversation(run)
    timeline = []
    for s in steps:
        timeline.append(
            {
                "index": s.index,
                "name": s.name,
                "kind": s.kind,
                "agent": s.agent,
                "owner": s.owner,
                "status": s.status,
                "offset_ms": "-" if untimed else round((s.started_ns - run.started_ns) / 1e6, 3),
                "duration": "unknown" if untimed else _dur(s.duration_ns),
                "findings": [f"{f.severity}: {f.message}" for f in by_step.get(s.id, [])],
                "error": f"{s.error.type}: {s.error.message}" if s.error else None,
                "role": (
                    "root cause"
                    if att.root_cause and s.id == att.root_cause.id
                    else "failure point"
                    if att.failure_point and s.id == att.failure_point.id
                    else ""
                ),
            }
        )
    # Values erased by `audit redact` are shown as such, not as missing.
    gone = REDACTED if redacted_runs(store, [run_id]) else None
    chain = []
    for ref in att.chain:
        link = ctx.step(ref.id)
        if link is None:
            continue
        chain.append(
            {
                **ref.to_dict(),
                "output": _preview(ctx.output(link)) if link.output_hash else gone,
                "error": f"{link.error.type}: {link.error.message}" if link.error else None,
            }
        )

    # Impact: what the failure cost and what never happened.
    tokens = sum((s.input_tokens or 0) + (s.output_tokens or 0) for s in steps)
    cost = sum(s.cost or 0.0 for s in steps)
    not_reached = _not_reached(ctx) if att.failure_point is not None else []
    total = store.count_runs(RunQuery(workflow=run.workflow))
    failed_total = store.count_runs(RunQuery(workflow=run.workflow, status="failed"))
    impact = {
        "outcome": run.status,
        "reason": run.reason,
        "duration": "an unknown duration (imported conversation: order only)"
        if untimed
        else _dur(run.duration_ns),
        "steps_completed": sum(1 for s in steps if s.status == "ok"),
        "of_steps": att.of_steps,
        "steps_not_reached": not_reached,
        "tokens": tokens,
        "cost": round(cost, 6),
        "workflow_failure_rate": f"{failed_total} of {total} recorded runs failed",
    }
    fp_step = ctx.step(att.failure_point.id) if att.failure_point else None
    # A run with nothing to attribute has no such steps (the rules would name the workflow's
    # owner for a step that does not exist).
    owners = {
        "root_cause_step": (
            owner_of(run.workflow, root, root.owner) or "unowned (no owner recorded)"
            if root is not None
            else "none (nothing to attribute)"
        ),
        "failure_point_step": (
            owner_of(run.workflow, fp_step, fp_step.owner) or "-" if fp_step is not None else "-"
        ),
        "workflow": owner_of(run.workflow, None, run.owner) or "unowned (no owner recorded)",
    }
    root_findings = by_step.get(root.id, []) if root else []
    return {
        "title": f"Postmortem: {run.workflow} run {run.id[:12]}",
        "generated": _ts(time.time_ns()),
        "run": {
            "id": run.id,
            "workflow": run.workflow,
            "version": run.version,
            "owner": run.owner,
            "service": run.service,
            "status": run.status,
            "started": "unknown" if untimed else _ts(run.started_ns),
            "ended": "an unknown time" if untimed else _ts(run.ended_ns),
            "reason": run.reason,
        },
        "summary": att.summary,
        "attribution": att.to_dict(),
        "impact": impact,
        "owners": owners,
        "chain": chain,
        "timeline": timeline,
        "similar_failures": _similar(store, run, att) if att.failed else [],
        "action_items": action_items(att, root, root_findings) if att.failed else [],
    }


# -- Markdown ------------------------------------------------------------------------------


def _not_reached(ctx: RunContext) -> list[str]:
    """Steps the workflow's successful runs have that this run never started, in their
    usual order."""
    if not ctx.history.run_ids:
        return []
    seen = {s.name for s in ctx.steps}
    return [n for n in ctx.history.samples if n not in seen]


def steps_not_reached(store: StoreReader, record: Any) -> list[str]:
    """``_not_reached`` for a stored run (``flightlog show``, the run page)."""
    return _not_reached(RunContext(store, record, history_cache.get(store, record.run.workflow)))


__all__ = ["_md", "postmortem", "render", "render_html", "render_markdown", "steps_not_reached"]
