"""The board report: how reliable each workflow was over a period, and what was done about it.

``board_report(store, period_ns=7 days)`` gathers, for runs started in the period: each
workflow's clean-run rate with its interval and the change from the period before, the
trend per day, SLO status, failures per 1,000 runs, the cost of failures and who caused
them (root-cause owners, from stored attributions); the incidents opened in the period with
time to detect, acknowledge and resolve; the fire drills run and their results; and the
audit ledger's state. ``render(report, "md" | "html" | "json")`` writes it for people who
must explain it (``flightlog.reliability.board_render``: plots where a picture reads faster,
every term explained in one line; ``pdf(html, path)`` prints the HTML with headless
Chromium). ``render``, ``markdown``, ``html`` and ``pdf`` are importable from here too.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightlog.reliability import reliability
from flightlog.reliability.board_render import find_chromium, html, markdown, pdf, render
from flightlog.reliability.render import GLOSSARY as RELIABILITY_TERMS
from flightlog.store import core

if TYPE_CHECKING:
    from flightlog.store.base import Store

TERMS: dict[str, str] = {
    **RELIABILITY_TERMS,
    "SLO": "service-level objective: the share of runs that must be clean over a window "
    "(for example 99% over 28 days)",
    "error budget": "the share of runs allowed to fail under the SLO (1% for a 99% target); "
    "'remaining' is how much of it is left",
    "MTTD": "mean time to detect: from a failed run ending to its incident opening",
    "MTTA": "mean time to acknowledge: from the incident opening to someone acknowledging it",
    "MTTR": "mean time to resolve: from the incident opening to it being resolved",
    "fire drill": "faults injected on purpose to prove that detection, attribution and paging "
    "work (flightlog drill)",
    "audit ledger": "an append-only, signed log of every record, verifiable offline",
}


def _mean(values: list[int]) -> float | None:
    return statistics.fmean(values) if values else None


def _incidents(store: Store, since: int, until: int) -> dict[str, Any]:
    if store.schema_version("respond") == 0:
        return {"items": [], "mttd_ns": None, "mtta_ns": None, "mttr_ns": None}
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT id, workflow, status, severity, root_cause_step, root_cause_team, "
            "opened_ns, acknowledged_ns, resolved_ns, run_count, fingerprint, first_run_id "
            "FROM respond_incidents WHERE opened_ns >= ? AND opened_ns < ? ORDER BY opened_ns",
            (since, until),
        )
        ended_at = core.ended_ns(tx, [str(r[11]) for r in rows if r[11]])
    items = []
    for iid, wf, status, sev, step, team, opened, acked, resolved, n, fp, first in rows:
        ended = ended_at.get(str(first)) if first else None
        is_slo = str(fp).startswith("slo/")
        items.append(
            {
                "id": int(iid),
                "workflow": wf,
                "kind": "SLO burn" if is_slo else "run failure",
                "status": status,
                "severity": sev,
                "root_cause_step": step,
                "owner": team,
                "runs": int(n),
                "opened_ns": int(opened),
                "detect_ns": None if is_slo or ended is None else max(0, int(opened) - int(ended)),
                "acknowledge_ns": None if acked is None else int(acked) - int(opened),
                "resolve_ns": None if resolved is None else int(resolved) - int(opened),
            }
        )
    return {
        "items": items,
        "mttd_ns": _mean([i["detect_ns"] for i in items if i["detect_ns"] is not None]),
        "mtta_ns": _mean([i["acknowledge_ns"] for i in items if i["acknowledge_ns"] is not None]),
        "mttr_ns": _mean([i["resolve_ns"] for i in items if i["resolve_ns"] is not None]),
    }


def _audit(store: Store) -> dict[str, Any]:
    if store.schema_version("ledger") == 0:
        return {"enabled": False}
    with store.read() as tx:
        size = tx.fetchone("SELECT count(*) FROM ledger_entries")
        last = tx.fetchone(
            "SELECT size, created_ns FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"
        )
        ver = tx.fetchone(
            "SELECT verified_ns, verified_ok, verified_message FROM ledger_state WHERE id = 1"
        )
    return {
        "enabled": True,
        "entries": int(size[0]) if size else 0,
        "last_checkpoint": {"size": int(last[0]), "created_ns": int(last[1])} if last else None,
        "last_verification": (
            {"at_ns": int(ver[0]), "ok": bool(ver[1]), "summary": ver[2]}
            if ver and ver[0] is not None
            else None
        ),
    }


def board_report(
    store: Store,
    *,
    period_ns: int,
    now_ns: int | None = None,
    config_path: str | Path | None = None,
) -> dict[str, Any]:
    """Everything the board report shows, as plain data (see the module docstring)."""
    from flightlog.reliability.drills import list_drills
    from flightlog.reliability.settings import load_reliability_settings, owner_resolver
    from flightlog.reliability.slo import evaluate_all

    until = time.time_ns() if now_ns is None else now_ns
    since = until - period_ns
    settings = load_reliability_settings(config_path)
    owners = owner_resolver(config_path)
    now = reliability(
        store, since_ns=since, until_ns=until, owners=owners, cost_per_failure=settings.cost_for
    )
    before = reliability(store, since_ns=since - period_ns, until_ns=since)
    previous = {w.workflow: w.end_to_end for w in before.workflows}
    slos = evaluate_all(store, settings.slos, until)
    workflows = []
    by_owner: dict[str, list[float]] = {}
    for wf in now.workflows:
        prev = previous.get(wf.workflow)
        for s in wf.by_owner:
            mine = by_owner.setdefault(s.name or "(not attributed)", [0, 0.0])
            mine[0] += s.failures
            mine[1] += s.cost
        workflows.append(
            {
                **wf.to_dict(),
                "previous": None if prev is None else prev.to_dict(),
                "change": (
                    None
                    if prev is None or prev.value is None or wf.end_to_end.value is None
                    else wf.end_to_end.value - prev.value
                ),
                "slos": [s.to_dict() for s in slos if s.slo.workflow == wf.workflow],
            }
        )
    failures = sum(int(v[0]) for v in by_owner.values())
    owners_rows: list[dict[str, Any]] = sorted(
        (
            {
                "owner": k,
                "failures": int(v[0]),
                "share": v[0] / failures if failures else 0.0,
                "cost": v[1],
            }
            for k, v in by_owner.items()
        ),
        key=lambda r: (r["owner"] == "(not attributed)", -float(r["failures"]), str(r["owner"])),
    )
    drills = list_drills(store, since_ns=since)
    return {
        "period": {"since_ns": since, "until_ns": until, "days": period_ns / 86_400e9},
        "currency": settings.currency,
        "workflows": workflows,
        "slos": [s.to_dict() for s in slos],
        "root_causes_by_owner": owners_rows,
        "cost_of_failures": sum(w["cost"]["of_failed_runs"] for w in workflows),
        "cost_of_failures_configured": sum(
            w["cost"]["of_failures_configured"] or 0.0 for w in workflows
        ),
        "incidents": _incidents(store, since, until),
        "drills": drills,
        "audit": _audit(store),
        "terms": TERMS,
    }


__all__ = ["TERMS", "board_report", "find_chromium", "html", "markdown", "pdf", "render"]
