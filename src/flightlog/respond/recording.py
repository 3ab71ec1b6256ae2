"""Incident recording: ended runs folded into incidents (idempotent per run).

Each failed (or degraded) run's stored attribution (the one in the audit ledger) is
fingerprinted (workflow, failure-point step, root-cause step, error class) and the run joins
the open incident with that fingerprint, or opens one with its alerts (``alerts``). A
successful run counts towards the auto-resolution of its workflow's incidents. A run is
claimed (``respond_processed``) in the transaction that records it, so the SDK's run-end
pipeline, ``flightlog watch`` and the server may all see it: it counts once. Counterfactual
replays (``flightlog replay``) are experiments: nobody is paged.

Who owns what: the owner of the root-cause step (``root_cause_team``, from the owner rules
and the owner recorded on the step) and the workflow's owner (``workflow_team``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flightlog.model import Run, Step, severity_rank
from flightlog.respond import alerts as alerts_mod
from flightlog.respond import incidents as inc_mod
from flightlog.respond.clock import Clock
from flightlog.respond.config import RespondConfig
from flightlog.respond.owners import OwnerQuery, owner_query, resolve_owner
from flightlog.respond.transitions import follow_up
from flightlog.store.base import Store, Tx, chunked

if TYPE_CHECKING:
    from flightlog.forensics.attribution import Attribution

log = logging.getLogger("flightlog.respond")

Attribute = Callable[[Store, str], Any]
ENDED = ("failed", "degraded", "succeeded")
# Successful runs recorded in one transaction (under the ``respond`` lock) at most.
SUCCESS_BATCH = 100


def audited_attribution(store: Store, run_id: str) -> Attribution:
    """The attribution stored (and audited) when the run ended; computed, stored and audited
    now when the run-end pipeline has not seen the run (``flightlog watch`` on a store whose
    recorder skipped it). Alerts always carry the attribution the ledger holds."""
    from flightlog.forensics.ledger import audited_attribution as audited

    return audited(store, run_id)


def _ref(ref: Any) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {k: getattr(ref, k, None) for k in ("id", "index", "name", "agent", "kind", "owner")}


@dataclass
class _StepLike:
    """A ``StepRef``-shaped view of a step (used when attribution is unavailable)."""

    step: Step

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


class IncidentRecorder:
    """Folds ended runs of one store into incidents (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        config: RespondConfig,
        clock: Clock,
        attribute: Attribute | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.attribute = attribute or audited_attribution

    def pending_runs(self, since_ns: int | None = None, limit: int = 1000) -> list[str]:
        """Ended runs (failed or succeeded) not yet processed, oldest end first."""
        return self.store.ended_runs(
            since_ns=since_ns or 0, limit=limit, unmarked_in=("respond_processed", "run_id")
        )

    def process_runs(self, run_ids: Sequence[str]) -> list[int]:
        """Fold ended runs into incidents (idempotent per run). Returns touched incident ids.

        The runs and which of them are processed already are read in one snapshot; runs
        in a row that succeeded are recorded together, in one transaction (up to
        ``SUCCESS_BATCH``), each as on its own (claimed, counted, incidents resolved), in
        the same order: one ``respond`` lock and one commit instead of one per run."""
        from flightlog.store import core

        ids = list(dict.fromkeys(run_ids))
        with self.store.read() as tx:
            found = core.runs_by_id(tx, ids)
            done: set[str] = set()
            for part in chunked(sorted(found), 500):
                marks = ", ".join("?" * len(part))
                done.update(
                    str(r[0])
                    for r in tx.fetchall(
                        f"SELECT run_id FROM respond_processed WHERE run_id IN ({marks})", part
                    )
                )
        runs = [
            r
            for r in (found[i] for i in ids if i in found)
            if r.status in ENDED and r.source != "replay" and r.id not in done
        ]
        runs.sort(key=lambda r: (r.ended_ns or 0, r.id))
        touched: list[int] = []
        at = 0
        while at < len(runs):
            run = runs[at]
            if run.status in ("failed", "degraded"):
                try:
                    facts = self.facts(run)
                except Exception as exc:  # an alert without attribution beats none
                    log.exception("attribution of run %s failed; alerting without it", run.id)
                    facts = self.facts(run, error=exc)
                iid = self._record_failure(run, facts)
                if iid > 0:
                    touched.append(iid)
                at += 1
                continue
            end = at + 1
            while (
                end < len(runs)
                and end - at < SUCCESS_BATCH
                and runs[end].status not in ("failed", "degraded")
            ):
                end += 1
            touched.extend(self._record_successes(runs[at:end]))
            at = end
        return touched

    def facts(self, run: Run, *, error: BaseException | None = None) -> dict[str, Any]:
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
            owner_query(
                run.workflow,
                step=root_step if rc_ref else None,
                agent=rc_ref["agent"] if rc_ref else None,
                kind=rc_ref.get("kind") if rc_ref else None,
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

    def _record_failure(self, run: Run, facts: dict[str, Any]) -> int:
        now = self.clock.now_ns()
        with inc_mod.transaction(self.store) as tx:
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
                alerts_mod.create(tx, incident, alerts_mod.owners_roles(incident))
            tx.execute(
                "UPDATE respond_processed SET incident_id = ? WHERE run_id = ?",
                (incident.id, run.id),
            )
        return incident.id

    @staticmethod
    def _claim_run(tx: Tx, run: Run, now: int) -> bool:
        """Mark a run processed inside the transaction that processes it; False when another
        process (the SDK hook, ``watch``, the server) got there first."""
        row = tx.fetchone(
            "INSERT INTO respond_processed (run_id, status, incident_id, processed_ns) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
            (run.id, run.status, None, now),
        )
        return row is not None

    def _record_successes(self, runs: Sequence[Run]) -> list[int]:
        """Count successful runs, in order, in one transaction; each one claimed first (a
        run another process claimed is skipped). The incidents resolved, in order."""
        out: list[int] = []
        with inc_mod.transaction(self.store) as tx:
            for run in runs:
                now = self.clock.now_ns()
                if not self._claim_run(tx, run, now):
                    continue
                resolved = inc_mod.record_success(
                    self.store,
                    tx,
                    workflow=run.workflow,
                    run_id=run.id,
                    now_ns=now,
                    auto_resolve_after=self.config.auto_resolve_after,
                )
                for incident in resolved:
                    follow_up(tx, self.config, incident, "resolve", now)
                out.extend(i.id for i in resolved)
        return out
