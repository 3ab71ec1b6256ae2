"""Alerts: who an incident tells (one alert per role), their labels, and the message.

An incident has an alert per role: ``root_cause`` (the owner of the root-cause step, paged)
and, when another team owns the workflow, ``workflow_owner`` (notified); an SLO incident has
one, ``root_cause`` for a page or ``slo_ticket`` for a ticket. ``view`` is what a receiver is
told about an alert (``channels.AlertView``), from the incident as stored: a failed run's
attribution, or an SLO's burn-rate figures (an attribution holding ``slo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flightlog import _json
from flightlog.respond import incidents as inc_mod
from flightlog.respond.channels import AlertView
from flightlog.respond.config import RespondConfig
from flightlog.respond.incidents import Incident
from flightlog.respond.routing import AlertFacts
from flightlog.store.base import Tx


@dataclass(frozen=True)
class Alert:
    """An alert as stored (``respond_alerts``) with its incident."""

    incident: Incident
    role: str
    team: str
    first_notified_ns: int | None
    escalation_level: int

    @property
    def labels(self) -> dict[str, str]:
        return labels(self.incident, self.role, self.team)

    def facts(self) -> AlertFacts:
        """What routing, inhibition and silences look at."""
        i = self.incident
        return AlertFacts(i.id, self.role, self.labels, i.status, tuple(i.chain))


def labels(incident: Incident, role: str, team: str) -> dict[str, str]:
    return {
        "workflow": incident.workflow,
        "severity": incident.severity,
        "team": team,
        "agent": incident.root_cause_agent or "",
        "step": incident.root_cause_step,
        "role": role,
        "failure_step": incident.failure_step,
        "incident": str(incident.id),
        "fingerprint": incident.fingerprint,
        "error": incident.error_class,
    }


def create(tx: Tx, incident: Incident, roles: list[tuple[str, str]]) -> None:
    """The alerts of a new incident: one per (role, team)."""
    for role, team in roles:
        tx.execute(
            "INSERT INTO respond_alerts (incident_id, role, team, labels, "
            "first_notified_ns, escalation_level) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (incident_id, role) DO NOTHING",
            (incident.id, role, team, _json.dumps(labels(incident, role, team)), None, 0),
        )


def owners_roles(incident: Incident) -> list[tuple[str, str]]:
    """A failed run's incident pages the root cause's owner and notifies the workflow's
    owner, when that is another team."""
    roles = [("root_cause", incident.root_cause_team)]
    if incident.workflow_team != incident.root_cause_team:
        roles.append(("workflow_owner", incident.workflow_team))
    return roles


def load(tx: Tx) -> list[Alert]:
    """The alerts that may still need telling: of open incidents, or resolved ones whose
    resolution a group has not been told yet."""
    rows = tx.fetchall(
        f"SELECT a.role, a.team, a.first_notified_ns, a.escalation_level, "
        f"{', '.join('i.' + c.strip() for c in inc_mod.COLUMNS.split(','))} "
        "FROM respond_alerts a JOIN respond_incidents i ON i.id = a.incident_id "
        "WHERE i.status <> 'resolved' OR EXISTS (SELECT 1 FROM respond_group_alerts g "
        "WHERE g.incident_id = a.incident_id AND g.role = a.role "
        "AND g.notified_status <> 'resolved') ORDER BY a.incident_id, a.role"
    )
    return [Alert(Incident.from_row(tuple(r[4:])), r[0], r[1], r[2], int(r[3])) for r in rows]


# -- the message ---------------------------------------------------------------------------
def view(config: RespondConfig, incident: Incident, role: str, team: str) -> AlertView:
    """What a receiver is told about ``incident``'s alert for ``role``."""
    if "slo" in incident.attribution:
        return slo_view(incident, role, team)
    return run_failure_view(config, incident, role, team)


def _view(
    incident: Incident,
    role: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    summary: str,
    lines: list[str],
) -> AlertView:
    return AlertView(
        incident_id=incident.id,
        role=role,
        status="resolved" if incident.status == "resolved" else "firing",
        incident_status=incident.status,
        labels=labels,
        annotations=annotations,
        starts_ns=incident.opened_ns,
        ends_ns=incident.resolved_ns,
        fingerprint=incident.fingerprint,
        dedup_key=f"flightlog/{incident.fingerprint}/{incident.id}",
        severity=incident.severity,
        summary=summary,
        text="\n".join(lines),
    )


def run_failure_view(config: RespondConfig, incident: Incident, role: str, team: str) -> AlertView:
    """A failed run's incident: where it failed, the root cause, evidence, the report."""
    a = incident.attribution
    fp, rc = a.get("failure_point") or {}, a.get("root_cause") or {}
    run_id = str(a.get("run_id") or incident.last_run_id)
    n = a.get("of_steps")
    where = (
        f"failed at step {fp.get('index')} of {n} ({fp.get('name')})"
        if fp
        else "failed before any step ran"
    )
    rc_text = (
        f"step {rc.get('index')} {rc.get('name')}"
        + (
            f" (agent {rc['agent']}, owner {incident.root_cause_team})"
            if rc.get("agent")
            else f" (owner {incident.root_cause_team})"
        )
        if rc
        else "not identified"
    )
    conf = float(a.get("confidence") or 0.0)
    evidence = [str(e) for e in a.get("evidence") or []][:3]
    report_cmd = f"flightlog report {run_id}"
    report_url = (config.report_url or "").format(run_id=run_id, incident=incident.id)
    runs = incident.run_count
    role_line = (
        "You are paged as the owner of the root-cause step."
        if role == "root_cause"
        else "You are notified as the owner of the workflow."
    )
    lines = [
        f"{incident.workflow}: run {run_id} {where}.",
        f"Root cause: {rc_text}; confidence {conf:.2f}"
        + (f" ({a.get('method')})" if a.get("method") else "")
        + ".",
    ]
    if evidence:
        lines.append("Evidence:")
        lines.extend(f"  - {e}" for e in evidence)
    lines.append(f"Runs affected: {runs} (incident #{incident.id}, {incident.error_class}).")
    lines.append(f"Report: {report_cmd}" + (f"  {report_url}" if report_url else ""))
    lines.append(role_line)
    summary = (
        f"{incident.workflow} {where}; root cause {incident.root_cause_step}"
        + (f" (agent {incident.root_cause_agent})" if incident.root_cause_agent else "")
        + f"; {runs} run{'s' if runs != 1 else ''} affected"
    )
    annotations = {
        "summary": summary,
        "description": "\n".join(lines),
        "run_id": run_id,
        "failure": where,
        "root_cause": rc_text,
        "agent": incident.root_cause_agent or "",
        "evidence": "; ".join(evidence),
        "confidence": f"{conf:.2f}",
        "affected_runs": str(runs),
        "report": report_cmd,
        "incident_status": incident.status,
    }
    if report_url:
        annotations["report_url"] = report_url
    return _view(incident, role, labels(incident, role, team), annotations, summary, lines)


def slo_view(incident: Incident, role: str, team: str) -> AlertView:
    """An SLO burn-rate incident (``flightlog.reliability.burn_alerts`` opens them): the
    firing rules, the SLI and the error budget left."""
    a: dict[str, Any] = incident.attribution
    severity = a.get("slo_severity", "page")
    st = a.get("slo") or {}
    slo = st.get("slo") or {}
    text = a.get("summary") or f"SLO {slo.get('name')}"
    lines = [text]
    for f in st.get("firing") or []:
        lines.append(
            f"  {f['rule']}: {f['long']['burn_rate']:.1f}x over {f['long']['window']} "
            f"({f['long']['bad']} of {f['long']['valid']} bad), "
            f"{f['short']['burn_rate']:.1f}x over {f['short']['window']}"
        )
    left = st.get("budget_remaining")
    lines.append(
        f"Target {slo.get('target')} over the SLO window; SLI "
        + ("n/a" if st.get("sli") is None else f"{st['sli']:.2%}")
        + ("" if left is None else f"; error budget remaining {left:.0%}")
        + "."
    )
    lines.append(f"Details: flightlog reliability {slo.get('workflow')} --since 3d")
    lines.append(
        "You are paged: the error budget is burning fast."
        if severity == "page"
        else "A ticket: the error budget will be spent before the SLO window ends."
    )
    annotations = {
        "summary": text,
        "description": "\n".join(lines),
        "slo": str(slo.get("name") or ""),
        "budget_remaining": "" if left is None else f"{left:.4f}",
        "incident_status": incident.status,
    }
    slo_labels = labels(incident, role, team) | {"slo": str(slo.get("name") or "")}
    return _view(incident, role, slo_labels, annotations, text, lines)
