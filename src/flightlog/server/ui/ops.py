"""``GET /incidents`` (the response layer's incidents) and ``GET /audit`` (the audit
ledger's status). Both read only; each shows a friendly empty state when its component has
never run against this store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from flightlog.server.ui._html import e, error_page, page, pill, q, when

if TYPE_CHECKING:
    from flightlog.store.base import Store, StoreReader

INCIDENT_STATES = ("open", "triggered", "acknowledged", "resolved")
RUNS_PER_INCIDENT = 10


def incidents_page(store: StoreReader, request: Request) -> HTMLResponse:
    state = request.query_params.get("state") or None
    if state is not None and state not in INCIDENT_STATES:
        return error_page(400, f"state={state!r} is not one of {', '.join(INCIDENT_STATES)}")
    if store.schema_version("respond") == 0:
        body = (
            "<h1>Incidents</h1><div class='empty'>No incidents yet: the response layer has "
            "not run against this store. Failed runs become incidents (grouped by "
            "fingerprint, routed to their owners) once <code>flightlog watch</code> runs "
            "or the server's run-end pipeline has alerting configured; see "
            "<code>docs/respond.md</code>.</div>"
        )
        return page("Incidents", body, active="incidents")
    from flightlog.respond.incidents import list_incidents

    with store.read() as tx:
        found = list_incidents(tx, status=state, limit=200)
        affected: dict[int, list[str]] = {}
        if found:
            marks = ", ".join("?" for _ in found)
            for run_id, inc_id in tx.fetchall(
                "SELECT run_id, incident_id FROM respond_processed WHERE incident_id IN "
                f"({marks}) ORDER BY processed_ns DESC",
                [i.id for i in found],
            ):
                affected.setdefault(int(inc_id), []).append(str(run_id))
    visible = _visible(
        store,
        [r for i in found for r in affected.get(i.id, [])]
        + [r for i in found for r in (i.last_run_id, i.first_run_id)],
    )
    if visible is not None:  # a project's reader sees incidents with a run of its own
        for i in found:
            affected[i.id] = [r for r in affected.get(i.id, []) if r in visible]
        found = [
            i
            for i in found
            if affected[i.id] or i.last_run_id in visible or i.first_run_id in visible
        ]
    opts = "".join(
        f"<option{' selected' if s == state else ''}>{s}</option>" for s in INCIDENT_STATES
    )
    form = (
        "<form class='filters' method='get' action='/incidents'><label>state"
        f"<select name='state'><option value=''>any</option>{opts}</select></label>"
        "<button type='submit'>Filter</button></form>"
    )
    rows = []
    for i in found:
        runs = affected.get(i.id) or [i.last_run_id, i.first_run_id]
        runs = [r for r in dict.fromkeys(runs) if visible is None or r in visible]
        runs = runs[:RUNS_PER_INCIDENT]
        links = " ".join(f"<a class='mono' href='/runs/{q(r)}'>{e(r[:8])}</a>" for r in runs)
        owner = i.root_cause_team + (
            f" (workflow: {i.workflow_team})" if i.workflow_team != i.root_cause_team else ""
        )
        summary = (i.attribution or {}).get("summary") or ""
        rows.append(
            f"<tr><td class='mono'><a href='/incidents/{i.id}'>INC-{i.id}</a></td>"
            f"<td>{pill(i.status)}</td>"
            f"<td>{pill(i.severity)}</td><td>{e(i.workflow)}</td>"
            f"<td class='mono'>{e(i.fingerprint)}</td>"
            f"<td>{e(i.root_cause_step)}"
            f"{' · ' + e(i.root_cause_agent) if i.root_cause_agent else ''}"
            f" → {e(i.failure_step)}<br><span class='muted'>{e(i.error_class)}</span></td>"
            f"<td>{e(owner)}</td><td class='num'>{i.run_count}</td><td>{links}</td>"
            f"<td class='mono'>{e(when(i.opened_ns))}<br>{e(when(i.last_failure_ns))}</td>"
            f"<td>{e(summary[:160])}{'…' if len(summary) > 160 else ''}</td></tr>"
        )
    table = (
        "<table><tr><th>incident</th><th>state</th><th>severity</th><th>workflow</th>"
        "<th>fingerprint</th><th>root cause → failure point</th><th>owner</th><th>runs</th>"
        "<th>affected runs</th><th>opened / last failure (UTC)</th><th>attribution</th></tr>"
        f"{''.join(rows)}</table>"
        if rows
        else "<div class='empty'>No incidents"
        + (f" in state {e(state)}" if state else "")
        + ".</div>"
    )
    body = (
        f"<h1>Incidents</h1>{form}<p class='muted'>Failed runs grouped by fingerprint "
        "(workflow, failure point, root cause, error class), newest first. Acknowledge "
        f"or resolve with <code>flightlog incident ack|resolve</code>.</p>{table}"
    )
    return page("Incidents", body, active="incidents")


def incident_page(store: StoreReader, raw_id: str) -> HTMLResponse:
    """One incident: its fingerprint, owners, attribution, affected runs and timeline."""
    from flightlog.errors import FlightlogError
    from flightlog.respond import incidents as inc

    try:
        iid = inc.parse_id(raw_id)
    except FlightlogError as exc:
        return error_page(404, str(exc))
    if not 0 < iid < 2**62:
        return error_page(404, f"no incident #{iid}; incident ids are positive numbers")
    if store.schema_version("respond") == 0:
        return error_page(404, f"no incident #{iid}: no incidents have been recorded")
    try:
        with store.read() as tx:
            i = inc.get(tx, iid)
            events = inc.timeline(tx, iid)
            runs = [
                str(r[0])
                for r in tx.fetchall(
                    "SELECT run_id FROM respond_processed WHERE incident_id = ? "
                    "ORDER BY processed_ns DESC LIMIT 200",
                    (iid,),
                )
            ]
    except FlightlogError as exc:
        return error_page(404, str(exc))
    a = i.attribution or {}
    runs = list(dict.fromkeys([*runs, i.last_run_id, i.first_run_id]))
    visible = _visible(store, runs)
    if visible is not None:
        runs = [r for r in runs if r in visible]
        if not runs:  # an incident of another project's runs does not exist for this one
            return error_page(404, f"no incident #{iid}")
    facts = [
        (
            "state",
            pill(i.status)
            + (
                f"; acknowledged by {e(i.acknowledged_by)} at {e(when(i.acknowledged_ns))} UTC"
                if i.acknowledged_ns
                else "; not acknowledged"
            )
            + (
                f"; resolved by {e(i.resolved_by)} at {e(when(i.resolved_ns))} UTC"
                if i.resolved_ns
                else ""
            ),
        ),
        ("severity", pill(i.severity)),
        ("workflow", e(i.workflow)),
        (
            "fingerprint",
            f"<span class='mono'>{e(i.fingerprint)}</span> (workflow, failure "
            "point, root cause, error class)",
        ),
        ("failure point", e(i.failure_step)),
        (
            "root cause",
            e(i.root_cause_step)
            + (f" (agent {e(i.root_cause_agent)})" if i.root_cause_agent else ""),
        ),
        ("error class", e(i.error_class)),
        ("paged", f"{e(i.root_cause_team)} (root-cause owner)"),
        ("notified", f"{e(i.workflow_team)} (workflow owner)"),
        ("opened", e(when(i.opened_ns)) + " UTC"),
        ("last failure", e(when(i.last_failure_ns)) + " UTC"),
        ("runs", f"{i.run_count} failed; {i.success_streak} successful since"),
        (
            "attribution",
            e(a.get("summary") or "-")
            + (f" · confidence {float(a.get('confidence') or 0):.2f}" if a else ""),
        ),
    ]
    if i.previous_id:
        facts.append(("follows", f"<a href='/incidents/{i.previous_id}'>INC-{i.previous_id}</a>"))
    if i.next_id:
        facts.append(("reopened as", f"<a href='/incidents/{i.next_id}'>INC-{i.next_id}</a>"))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    evidence = "".join(f"<li>{e(x)}</li>" for x in (a.get("evidence") or [])[:30])
    links = "".join(
        f"<li><a class='mono' href='/runs/{q(r)}'>{e(r)}</a> · "
        f"<a href='/runs/{q(r)}/report'>report</a></li>"
        for r in runs
    )
    rows = "".join(
        f"<tr><td class='mono nw'>{e(when(ev.at_ns))}</td><td>{e(ev.kind)}</td>"
        f"<td>{e(ev.actor)}</td><td>{e(_detail(ev.detail))}</td></tr>"
        for ev in events[-500:]
    )
    body = (
        f"<p><a href='/incidents'>← incidents</a></p><h1>INC-{i.id} · {e(i.workflow)}</h1>"
        f"<table style='width:auto'>{table}</table>"
        + (f"<h2>Evidence</h2><ul>{evidence}</ul>" if evidence else "")
        + f"<h2>Affected runs</h2><ul>{links}</ul><h2>Timeline</h2><table><tr><th>at "
        f"(UTC)</th><th>event</th><th>actor</th><th>detail</th></tr>{rows}</table>"
    )
    return page(f"INC-{i.id}", body, active="incidents")


def _visible(store: StoreReader, run_ids: list[str]) -> set[str] | None:
    """The runs of ``run_ids`` the reader may see; None when it may see every run."""
    visible = getattr(store, "visible_runs", None)
    return None if visible is None else set(visible(run_ids))


def _detail(detail: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in detail.items() if v is not None)
    return text[:600] + ("…" if len(text) > 600 else "")


def audit_page(writer: Store | None, reader: StoreReader) -> HTMLResponse:
    from flightlog.ledger import attach, ledger_enabled

    if writer is None or not ledger_enabled() or reader.schema_version("ledger") == 0:
        body = (
            "<h1>Audit ledger</h1><div class='empty'>The audit ledger is off for this "
            "server (<code>FLIGHTLOG_LEDGER=off</code> or <code>[ledger] enabled = false"
            "</code>), so records are not being appended to a Merkle log. See "
            "<code>docs/audit.md</code>.</div>"
        )
        return page("Audit", body, active="audit")
    from flightlog.ledger.status import status

    s = status(attach(writer))  # attached by open_store already: this returns that ledger
    last, ver = s["last_checkpoint"], s["last_verification"]
    rows = [
        ("log (origin)", e(s["origin"])),
        ("entries", f"{s['size']:,}"),
        ("root hash", f"<span class='mono'>{e(s['root'])}</span>"),
        ("created", e(when(s["created_ns"])) + " UTC"),
        ("checkpoints", f"{s['checkpoints']:,}"),
        (
            "last checkpoint",
            f"size {last['size']:,} at {e(when(last['created_ns']))} UTC; "
            f"{s['unsigned_entries']:,} entries since"
            if last
            else "none yet (<code>flightlog audit checkpoint</code>)",
        ),
        (
            "verifier key",
            f"<span class='mono'>{e(s['verifier_key'])}</span>"
            if s["verifier_key"]
            else "not created yet (<code>flightlog audit key</code>)",
        ),
        ("key file", e(s["key_path"] or "-")),
        ("witness", e(s["witness_path"] or "off")),
        ("retention", f"{e(s['retention_days'])} days" if s["retention_days"] else "keep all"),
        (
            "last verification",
            f"{pill('ok' if ver['ok'] else 'error')} {e(when(ver['at_ns']))} UTC: "
            f"{e(ver['summary'])}"
            if ver
            else "never (<code>flightlog audit verify</code>)",
        ),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    body = (
        "<h1>Audit ledger</h1><p class='muted'>Every stored record is a leaf of an "
        "append-only RFC 9162 Merkle log with signed C2SP checkpoints; an auditor verifies "
        "it offline (<code>flightlog audit verify</code>, <code>audit export</code>).</p>"
        f"<table style='width:auto'>{table}</table>"
    )
    return page("Audit", body, active="audit")
