"""The response engine: from ended runs to incidents, alerts and delivered notifications.

One engine serves every place Flightlog runs: the run-end pipeline's respond stage and the
clock's periodic tick (``flightlog.pipeline``, in the SDK's background writer and in the
server; ``engine_for``), ``flightlog watch`` (which polls a store for ended runs) and the
``incident ack|resolve`` commands. All state lives in the store, so any of them can pick up
where another stopped.

``process_runs``: each failed run's stored attribution (the one in the audit ledger) is
fingerprinted and joined to its incident; a successful run counts towards auto-resolution.
``tick``: escalates unacknowledged pages, flushes alert groups that are due (routing,
grouping, inhibition and silences in ``routing``) into the outbox, and delivers what is due.
Who is told: the owner of the root-cause step is paged (``role=root_cause``, the team's
``pager`` channels), the workflow's owner is notified (``role=workflow_owner``, the team's
``channels``); when they are the same team only the page is sent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightlog import _json
from flightlog.model import severity_rank
from flightlog.respond import incidents as inc_mod
from flightlog.respond.channels import AlertView, Notice, render
from flightlog.respond.clock import Clock, SystemClock
from flightlog.respond.config import (
    NS,
    OWNER_RECEIVER,
    RespondConfig,
    Route,
    load_respond_config,
)
from flightlog.respond.incidents import Incident
from flightlog.respond.outbox import Outbox, Sender, enqueue
from flightlog.respond.owners import OwnerQuery, resolve_owner, team_of
from flightlog.respond.routing import (
    AlertFacts,
    GroupState,
    content_hash,
    flush_due,
    group_key,
    group_labels,
    inhibited_by,
    match_routes,
    silenced_by,
)
from flightlog.respond.schema import ensure_schema
from flightlog.store.base import Tx

log = logging.getLogger("flightlog.respond")

Attribute = Callable[[Any, str], Any]


def _audited_attribution(store: Any, run_id: str) -> Any:
    """The attribution stored (and audited) when the run ended; computed, stored and audited
    now when the run-end pipeline has not seen the run (``flightlog watch`` on a store whose
    recorder skipped it). Alerts always carry the attribution the ledger holds."""
    from flightlog.forensics.ledger import audited_attribution

    return audited_attribution(store, run_id)


def _ref(ref: Any) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {k: getattr(ref, k, None) for k in ("id", "index", "name", "agent", "kind", "owner")}


@dataclass
class _StepLike:
    """A ``StepRef``-shaped view of a step (used when attribution is unavailable)."""

    step: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self.step, name)


@dataclass
class _NoAttribution:
    failure_point: Any
    root_cause: Any
    chain: list[Any]
    evidence: list[str]
    of_steps: int | None = None
    confidence: float = 0.0
    method: str = "none (attribution failed)"
    summary: str = ""


@dataclass
class TickResult:
    notifications: int = 0
    escalations: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    muted: dict[str, str] = field(default_factory=dict)  # "incident/role" -> reason


class Engine:
    """Incidents, routing and delivery over one store (see the module docstring)."""

    def __init__(
        self,
        store: Any,
        config: RespondConfig,
        *,
        clock: Clock | None = None,
        attribute: Attribute | None = None,
        sender: Sender | None = None,
        **outbox_options: Any,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock or SystemClock()
        self.attribute = attribute or _audited_attribution
        ensure_schema(store)
        self.outbox = Outbox(store, config.channels, self.clock, sender=sender, **outbox_options)
        self._lock = threading.Lock()

    # -- runs -> incidents ----------------------------------------------------------------
    def pending_runs(self, since_ns: int | None = None, limit: int = 1000) -> list[str]:
        """Ended runs (failed or succeeded) not yet processed, oldest end first."""
        with self.store.read() as tx:
            rows = tx.fetchall(
                "SELECT id FROM runs WHERE status IN ('failed', 'degraded', 'succeeded') "
                "AND source <> 'replay' AND ended_ns >= ? AND NOT EXISTS "
                "(SELECT 1 FROM respond_processed p WHERE p.run_id = runs.id) "
                "ORDER BY ended_ns, id LIMIT ?",
                (since_ns or 0, limit),
            )
        return [r[0] for r in rows]

    def process_runs(self, run_ids: Sequence[str]) -> list[int]:
        """Fold ended runs into incidents (idempotent per run). Returns touched incident ids."""
        runs = [r for r in (self.store.get_run(i) for i in dict.fromkeys(run_ids)) if r]
        runs.sort(key=lambda r: (r.ended_ns or 0, r.id))
        touched: list[int] = []
        with self._lock:
            for run in runs:
                # A counterfactual replay (flightlog replay) is an experiment: nobody is paged.
                if run.status not in ("failed", "degraded", "succeeded") or run.source == "replay":
                    continue
                with self.store.read() as tx:
                    if tx.fetchone("SELECT 1 FROM respond_processed WHERE run_id = ?", (run.id,)):
                        continue
                if run.status in ("failed", "degraded"):
                    try:
                        facts = self._facts(run)
                    except Exception as exc:  # an alert without attribution beats none
                        log.exception("attribution of run %s failed; alerting without it", run.id)
                        facts = self._facts(run, error=exc)
                    iid = self._record_failure(run, facts)
                    if iid > 0:
                        touched.append(iid)
                else:
                    touched.extend(self._record_success(run))
        return touched

    def _facts(self, run: Any, *, error: BaseException | None = None) -> dict[str, Any]:
        """The incident facts of a failed run. With ``error`` (attribution itself failed),
        the failure point is the step active when the run failed and the root cause is not
        identified: the incident still opens and the owners are still told."""
        if error is None:
            attr: Any = self.attribute(self.store, run.id)
        else:
            steps = self.store.get_steps(run.id)
            failed_step = next((s for s in steps if s.id == run.failed_step_id), None)
            point = None if failed_step is None else _StepLike(failed_step)
            attr = _NoAttribution(
                failure_point=point,
                root_cause=None,
                chain=[point] if point else [],
                evidence=[f"attribution failed: {type(error).__name__}: {error}"],
                of_steps=run.declared_steps or len(steps),
            )
        fp_ref, rc_ref = _ref(attr.failure_point), _ref(attr.root_cause)
        record = self.store.get_record(run.id)
        by_id = {s.id: s for s in record.steps}
        failure_step = fp_ref["name"] if fp_ref else "run"
        root_step = rc_ref["name"] if rc_ref else failure_step
        error_class = None
        for ref in (fp_ref, rc_ref):
            step = by_id.get(ref["id"]) if ref else None
            if step is not None and step.error is not None and step.error.type:
                error_class = step.error.type
                break
        if error_class is None and run.error is not None and run.error.type:
            error_class = run.error.type
        error_class = error_class or "Failure"
        severity = self.config.severity
        for f in record.findings:
            if severity_rank(f.severity) > severity_rank(severity):
                severity = f.severity
        rc_step = by_id.get(rc_ref["id"]) if rc_ref else None
        rc_owner = resolve_owner(
            self.config,
            OwnerQuery(
                run.workflow,
                step=root_step if rc_ref else None,
                agent=rc_ref["agent"] if rc_ref else None,
                tool=root_step if (rc_ref and rc_ref.get("kind") == "tool") else None,
                # The owner recorded on the step; the attribution's owner may come from
                # the same rules, which are asked here to name the deciding rule.
                code_owner=rc_step.owner if rc_step else (rc_ref or {}).get("owner"),
            ),
        )
        wf_owner = resolve_owner(self.config, OwnerQuery(run.workflow, code_owner=run.owner))
        chain = [getattr(s, "name", None) for s in (getattr(attr, "chain", None) or [])]
        summary = {
            "run_id": run.id,
            "failure_point": fp_ref,
            "root_cause": rc_ref,
            "of_steps": getattr(attr, "of_steps", None),
            "confidence": float(getattr(attr, "confidence", 0.0) or 0.0),
            "evidence": [str(e) for e in (getattr(attr, "evidence", None) or [])][:5],
            "method": getattr(attr, "method", None),
            "summary": getattr(attr, "summary", None),
            "reason": run.reason,
            "root_cause_owner_rule": rc_owner.rule.number if rc_owner.rule else None,
        }
        return {
            "fingerprint": inc_mod.fingerprint(run.workflow, failure_step, root_step, error_class),
            "workflow": run.workflow,
            "failure_step": failure_step,
            "root_cause_step": root_step,
            "root_cause_agent": rc_ref.get("agent") if rc_ref else None,
            "error_class": error_class,
            "severity": severity,
            "root_cause_team": rc_owner.team,
            "workflow_team": wf_owner.team,
            "chain": [c for c in chain if c],
            "attribution": summary,
        }

    def _record_failure(self, run: Any, facts: dict[str, Any]) -> int:
        now = self.clock.now_ns()
        with self.store.transaction() as tx:
            tx.lock("respond")  # first: before any row or ledger lock
            if not self._claim_run(tx, run, now):
                return -1
            latest = inc_mod.latest_for(tx, facts["fingerprint"])
            inc_mod.reset_streaks(tx, run.workflow)
            if latest is not None and latest.open:
                incident = inc_mod.add_failed_run(
                    tx,
                    latest,
                    run_id=run.id,
                    now_ns=now,
                    attribution=facts["attribution"],
                    store=self.store,
                )
            else:
                incident = inc_mod.open_incident(
                    self.store, tx, facts=facts, run_id=run.id, now_ns=now, previous=latest
                )
                self._create_alerts(tx, incident)
            tx.execute(
                "UPDATE respond_processed SET incident_id = ? WHERE run_id = ?",
                (incident.id, run.id),
            )
        return incident.id

    @staticmethod
    def _claim_run(tx: Tx, run: Any, now: int) -> bool:
        """Mark a run processed inside the transaction that processes it; False when another
        process (the SDK hook, ``watch``, the server) got there first."""
        row = tx.fetchone(
            "INSERT INTO respond_processed (run_id, status, incident_id, processed_ns) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
            (run.id, run.status, None, now),
        )
        return row is not None

    def _record_success(self, run: Any) -> list[int]:
        now = self.clock.now_ns()
        with self.store.transaction() as tx:
            tx.lock("respond")  # first: before any row or ledger lock
            if not self._claim_run(tx, run, now):
                return []
            resolved = inc_mod.record_success(
                self.store,
                tx,
                workflow=run.workflow,
                run_id=run.id,
                now_ns=now,
                auto_resolve_after=self.config.auto_resolve_after,
            )
            for incident in resolved:
                self._pagerduty_followup(tx, incident, "resolve", now)
        return [i.id for i in resolved]

    def _create_alerts(self, tx: Tx, incident: Incident) -> None:
        roles = [("root_cause", incident.root_cause_team)]
        if incident.workflow_team != incident.root_cause_team:
            roles.append(("workflow_owner", incident.workflow_team))
        for role, team in roles:
            tx.execute(
                "INSERT INTO respond_alerts (incident_id, role, team, labels, "
                "first_notified_ns, escalation_level) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (incident_id, role) DO NOTHING",
                (incident.id, role, team, _json.dumps(self._labels(incident, role, team)), None, 0),
            )

    @staticmethod
    def _labels(incident: Incident, role: str, team: str) -> dict[str, str]:
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

    # -- the message ---------------------------------------------------------------------
    def alert_view(self, incident: Incident, role: str, team: str) -> AlertView:
        a = incident.attribution
        if "slo" in a:  # a burn-rate alert (flightlog.reliability.burn_alerts)
            from flightlog.reliability.burn_alerts import slo_view

            return slo_view(self, incident, role, team)
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
        report_url = (self.config.report_url or "").format(run_id=run_id, incident=incident.id)
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
        return AlertView(
            incident_id=incident.id,
            role=role,
            status="resolved" if incident.status == "resolved" else "firing",
            incident_status=incident.status,
            labels=self._labels(incident, role, team),
            annotations=annotations,
            starts_ns=incident.opened_ns,
            ends_ns=incident.resolved_ns,
            fingerprint=incident.fingerprint,
            dedup_key=f"flightlog/{incident.fingerprint}/{incident.id}",
            severity=incident.severity,
            summary=summary,
            text="\n".join(lines),
        )

    # -- tick ------------------------------------------------------------------------------
    def tick(self) -> TickResult:
        """Escalate, flush due groups into the outbox, deliver what is due."""
        result = TickResult()
        with self._lock:
            self._flush_groups(result)
            self._escalate(result)
        counts = self.outbox.deliver_due()
        result.delivered, result.retried, result.failed = (
            counts["delivered"],
            counts["retry"],
            counts["failed"],
        )
        return result

    def _load_alerts(self, tx: Tx) -> list[tuple[Incident, str, str, int | None, int]]:
        rows = tx.fetchall(
            f"SELECT a.role, a.team, a.first_notified_ns, a.escalation_level, "
            f"{', '.join('i.' + c.strip() for c in inc_mod.COLUMNS.split(','))} "
            "FROM respond_alerts a JOIN respond_incidents i ON i.id = a.incident_id "
            "WHERE i.status <> 'resolved' OR EXISTS (SELECT 1 FROM respond_group_alerts g "
            "WHERE g.incident_id = a.incident_id AND g.role = a.role "
            "AND g.notified_status <> 'resolved') ORDER BY a.incident_id, a.role"
        )
        return [(Incident.from_row(tuple(r[4:])), r[0], r[1], r[2], int(r[3])) for r in rows]

    def _channels_for(self, route: Route, role: str, team: str) -> tuple[str, ...]:
        if route.receiver != OWNER_RECEIVER:
            return route.channels
        t = team_of(self.config, team)
        return t.pager if role == "root_cause" else t.channels

    def _mute_reason(self, facts: AlertFacts, everyone: list[AlertFacts], now: int) -> str | None:
        s = silenced_by(facts.labels, self.config.silences, now)
        if s is not None:
            return f"silenced by {s.id}" + (f" ({s.comment})" if s.comment else "")
        return inhibited_by(
            facts, everyone, self.config.inhibit_rules, causal=self.config.causal_inhibition
        )

    def _flush_groups(self, result: TickResult) -> None:
        if self.config.route is None:
            return
        now = self.clock.now_ns()
        with self.store.transaction() as tx:
            tx.lock("respond")  # first: before any row or ledger lock
            loaded = self._load_alerts(tx)
            facts = [
                AlertFacts(i.id, role, self._labels(i, role, team), i.status, tuple(i.chain))
                for i, role, team, _, _ in loaded
            ]
            groups: dict[str, dict[str, Any]] = {}
            for (incident, role, team, _, _), fa in zip(loaded, facts, strict=True):
                muted = self._mute_reason(fa, facts, now)
                if muted:
                    result.muted[f"{incident.id}/{role}"] = muted
                self._note_mute(tx, incident.id, role, muted, now)
                for route in match_routes(self.config.route, fa.labels):
                    chans = self._channels_for(route, role, team)
                    if not chans:
                        continue
                    key = group_key(route, chans, fa.labels)
                    g = groups.setdefault(
                        key,
                        {
                            "route": route,
                            "channels": chans,
                            "labels": group_labels(route, fa.labels),
                            "members": [],
                        },
                    )
                    g["members"].append((incident, role, team, muted))
            for key, g in groups.items():
                self._flush_group(tx, key, g, now, result)

    @staticmethod
    def _note_mute(tx: Tx, incident_id: int, role: str, reason: str | None, now: int) -> None:
        """Record on the timeline when an alert becomes muted or is muted no longer."""
        row = tx.fetchone(
            "SELECT muted FROM respond_alerts WHERE incident_id = ? AND role = ?",
            (incident_id, role),
        )
        before = row[0] if row else None
        if before == reason:
            return
        tx.execute(
            "UPDATE respond_alerts SET muted = ? WHERE incident_id = ? AND role = ?",
            (reason, incident_id, role),
        )
        inc_mod.add_timeline(
            tx,
            incident_id,
            now,
            "muted" if reason else "unmuted",
            "flightlog",
            {"role": role, "reason": reason or before},
        )

    def _flush_group(
        self, tx: Tx, key: str, g: dict[str, Any], now: int, result: TickResult
    ) -> None:
        route: Route = g["route"]
        notified = {
            (int(r[0]), r[1]): r[2]
            for r in tx.fetchall(
                "SELECT incident_id, role, notified_status FROM respond_group_alerts "
                "WHERE group_key = ?",
                (key,),
            )
        }
        visible = [
            (i, role, team)
            for i, role, team, muted in g["members"]
            if not muted
            and (i.status != "resolved" or notified.get((i.id, role), "resolved") != "resolved")
        ]
        if not visible:
            return
        row = tx.fetchone(
            "SELECT first_ns, last_sent_ns, last_hash, sent_count FROM respond_groups "
            "WHERE group_key = ?",
            (key,),
        )
        if row is None:
            tx.execute(
                "INSERT INTO respond_groups (group_key, route_id, channels, group_labels, "
                "first_ns, last_sent_ns, last_hash, sent_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    route.id,
                    _json.dumps(list(g["channels"])),
                    _json.dumps(g["labels"]),
                    now,
                    None,
                    None,
                    0,
                ),
            )
            row = (now, None, None, 0)
        state = GroupState(int(row[0]), row[1], row[2])
        digest = content_hash([(i.id, role, i.status, i.run_count) for i, role, _ in visible])
        firing = any(i.status != "resolved" for i, _, _ in visible)
        if not flush_due(route, state, digest, firing, now):
            return
        sent = int(row[3]) + 1
        notice = Notice(
            kind="notify",
            receiver=f"{route.id}:{'+'.join(g['channels'])}",
            group_key=key,
            group_labels=g["labels"],
            alerts=[self.alert_view(i, role, team) for i, role, team in visible],
        )
        ids = sorted({i.id for i, _, _ in visible})
        base = f"n-{hashlib.sha256(key.encode()).hexdigest()[:12]}-{sent}"
        for name in g["channels"]:
            channel = self.config.channels[name]
            for msg in render(channel, notice):
                enqueue(
                    tx,
                    key=f"{base}-{name}{('-' + msg.suffix) if msg.suffix else ''}",
                    channel=channel,
                    kind="notify",
                    message=msg,
                    incident_ids=[msg.incident_id] if msg.incident_id else ids,
                    group_key=key,
                    now_ns=now,
                )
                result.notifications += 1
        tx.execute(
            "UPDATE respond_groups SET last_sent_ns = ?, last_hash = ?, sent_count = ? "
            "WHERE group_key = ?",
            (now, digest, sent, key),
        )
        for i, role, _ in visible:
            tx.execute(
                "INSERT INTO respond_group_alerts (group_key, incident_id, role, "
                "notified_status) VALUES (?, ?, ?, ?) ON CONFLICT (group_key, incident_id, "
                "role) DO UPDATE SET notified_status = excluded.notified_status",
                (key, i.id, role, i.status),
            )
            tx.execute(
                "UPDATE respond_alerts SET first_notified_ns = ? WHERE incident_id = ? "
                "AND role = ? AND first_notified_ns IS NULL",
                (now, i.id, role),
            )

    def _escalate(self, result: TickResult) -> None:
        now = self.clock.now_ns()
        with self.store.transaction() as tx:
            tx.lock("respond")  # first: before any row or ledger lock
            loaded = self._load_alerts(tx)
            facts = [
                AlertFacts(i.id, role, self._labels(i, role, team), i.status, tuple(i.chain))
                for i, role, team, _, _ in loaded
            ]
            for (incident, role, team, first_ns, level), fa in zip(loaded, facts, strict=True):
                if role != "root_cause" or incident.status != "triggered" or first_ns is None:
                    continue
                levels = team_of(self.config, team).escalation
                if level >= len(levels):
                    continue
                nxt = levels[level]
                if now < first_ns + nxt.after_ns or self._mute_reason(fa, facts, now):
                    continue
                note = (
                    f"Not acknowledged within {nxt.after_ns / NS / 60:g} min: escalated to "
                    f"level {level + 1} of {team}'s escalation policy."
                )
                notice = Notice(
                    kind="escalation",
                    receiver=f"{team}:escalation-{level + 1}",
                    group_key=f"escalation:{incident.id}:{level + 1}",
                    group_labels={"incident": str(incident.id)},
                    alerts=[self.alert_view(incident, role, team)],
                    note=note,
                )
                for name in nxt.channels:
                    channel = self.config.channels[name]
                    for msg in render(channel, notice):
                        enqueue(
                            tx,
                            key=f"e-{incident.id}-{level + 1}-{name}"
                            f"{('-' + msg.suffix) if msg.suffix else ''}",
                            channel=channel,
                            kind="escalation",
                            message=msg,
                            incident_ids=[incident.id],
                            group_key=notice.group_key,
                            now_ns=now,
                        )
                tx.execute(
                    "UPDATE respond_alerts SET escalation_level = ? WHERE incident_id = ?"
                    " AND role = ?",
                    (level + 1, incident.id, role),
                )
                inc_mod.add_timeline(
                    tx,
                    incident.id,
                    now,
                    "escalated",
                    "flightlog",
                    {"level": level + 1, "team": team, "channels": list(nxt.channels)},
                )
                result.escalations += 1

    # -- human transitions -------------------------------------------------------------
    def _pagerduty_followup(self, tx: Tx, incident: Incident, action: str, now: int) -> None:
        """Send PagerDuty ``acknowledge``/``resolve`` (same dedup_key) to every PagerDuty
        channel that was sent a ``trigger`` for this incident."""
        rows = tx.fetchall(
            "SELECT DISTINCT channel FROM respond_outbox WHERE incident_id = ? "
            "AND action = 'trigger' ORDER BY channel",
            (incident.id,),
        )
        for (name,) in rows:
            channel = self.config.channels.get(name)
            if channel is None or channel.type != "pagerduty":
                continue
            view = self.alert_view(incident, "root_cause", incident.root_cause_team)
            notice = Notice(
                kind=action,
                receiver=name,
                group_key=f"pd:{incident.id}",
                group_labels={"incident": str(incident.id)},
                alerts=[view],
            )
            for msg in render(channel, notice):
                enqueue(
                    tx,
                    key=f"pd-{incident.id}-{action}-{name}",
                    channel=channel,
                    kind=action,
                    message=msg,
                    incident_ids=[incident.id],
                    group_key=notice.group_key,
                    now_ns=now,
                )

    def transition(
        self, incident_id: int, to: str, *, actor: str, note: str | None = None
    ) -> Incident:
        """Acknowledge or resolve an incident by hand; tells PagerDuty, then delivers."""
        now = self.clock.now_ns()
        with self._lock, self.store.transaction() as tx:
            tx.lock("respond")  # first: before any row or ledger lock
            incident = inc_mod.transition(
                self.store, tx, incident_id, to, actor=actor, now_ns=now, note=note
            )
            self._pagerduty_followup(
                tx, incident, "acknowledge" if to == "acknowledged" else "resolve", now
            )
        self.outbox.deliver_due()
        return incident


# -- entry points ------------------------------------------------------------------------------
def open_engine(
    store: Any, config_path: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Engine:
    """An engine over ``store`` with the configuration file found as usual."""
    return Engine(store, load_respond_config(config_path), **kwargs)


_engines: dict[tuple[int, str], tuple[Any, float, Engine | None]] = {}
_engines_lock = threading.Lock()


def engine_for(store: Any) -> Engine | None:
    """The engine the run-end pipeline and the clock use for ``store``: built from the
    flightlog.toml found as usual, rebuilt when the file changes; None without a file or
    without channels (alerting is off)."""
    from flightlog.config import find_config_file

    path = find_config_file()
    if path is None:
        return None
    mtime = Path(path).stat().st_mtime
    cache_key = (id(store), str(Path(path).resolve()))
    with _engines_lock:
        cached = _engines.get(cache_key)
        if cached is None or cached[0] is not store or cached[1] != mtime:
            config = load_respond_config(path)
            engine = Engine(store, config) if config.enabled else None
            _engines[cache_key] = (store, mtime, engine)
        return _engines[cache_key][2]


def on_runs_ended(store: Any, run_ids: Sequence[str]) -> None:
    """The run-end pipeline's respond stage (``flightlog.pipeline``): fold the ended runs into
    incidents (from their stored attributions), evaluate SLOs (throttled), tick. A no-op
    unless a ``flightlog.toml`` with channels is present."""
    engine = engine_for(store)
    if engine is None:
        return
    engine.process_runs(run_ids)
    _slo_pass(store, engine)
    engine.tick()


def on_clock(store: Any) -> None:
    """The server clock's periodic respond work: SLOs (throttled), then group, page,
    escalate, resolve and deliver what is due, whether or not a run ended."""
    engine = engine_for(store)
    if engine is None:
        return
    _slo_pass(store, engine)
    engine.tick()


def _slo_pass(store: Any, engine: Engine, *, keep_counts: bool = False) -> None:
    """SLO burn-rate evaluation (throttled) until the pipeline offers periodic work."""
    from flightlog.reliability.burn_alerts import periodic

    source = getattr(engine.config, "source", None)
    periodic(store, engine, getattr(source, "path", None), keep_counts=keep_counts)


def watch(
    store: Any,
    engine: Engine,
    *,
    interval_s: float = 5.0,
    once: bool = False,
    since_ns: int | None = None,
    on_pass: Callable[[list[int], TickResult], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Poll ``store`` for ended runs and run the engine, until ``stop`` is set (or once)."""
    while True:
        try:
            touched = engine.process_runs(engine.pending_runs(since_ns))
            _slo_pass(store, engine, keep_counts=True)
            result = engine.tick()
        except Exception:
            if once:
                raise
            # A passing problem (the store locked, a receiver misbehaving) must not stop the
            # watcher: everything it has not done is still in the store for the next pass.
            log.exception("flightlog watch: pass failed; retrying in %.1fs", interval_s)
        else:
            if on_pass is not None:
                on_pass(touched, result)
        if once or (stop is not None and stop.is_set()):
            return
        if stop is not None:
            if stop.wait(interval_s):
                return
        else:
            time.sleep(interval_s)
