"""Burn-rate alerts delivered through the response layer (routing, grouping, outbox).

``sync(engine, statuses)`` makes the incidents match the SLOs' firing rules: a severity
(``page`` / ``ticket``) that fires and has no open incident opens one (fingerprint
``slo/<name>/<severity>``); an open one whose severity no longer fires resolves. A page
alerts the SLO owner's ``pager`` channels (role ``root_cause``); a ticket their
``channels`` (role ``slo_ticket``). Each incident and transition is on the timeline and in
the audit ledger, as for run failures; successful runs never auto-resolve these incidents.
``engine.tick()`` then routes and delivers; the message is ``respond.alerts.slo_view``.

Run before each response tick, at most once per ``EVERY_NS`` per store (see ``periodic``):
the run-end pipeline and its clock hand ``evaluate`` to the response engine
(``flightlog.pipeline``), ``flightlog watch`` hands ``evaluate_and_count``. The response
layer never imports this module (it sits below reliability).
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from flightlog import _json
from flightlog.reliability.slo import SLOStatus, evaluate_all
from flightlog.respond import alerts as alerts_mod
from flightlog.store import core

if TYPE_CHECKING:
    from flightlog.respond.engine import Engine
    from flightlog.store.base import Store, Tx

log = logging.getLogger("flightlog.reliability")

SLO_PREFIX = "slo/"
EVERY_NS = 30 * 1_000_000_000
ROLE = {"page": "root_cause", "ticket": "slo_ticket"}
SEVERITY = {"page": "critical", "ticket": "warning"}


def fingerprint(name: str, severity: str) -> str:
    return f"{SLO_PREFIX}{name}/{severity}"


def _owner(engine: Engine, status: SLOStatus, tx: Tx) -> tuple[str, str]:
    """(team told, the workflow's team) for an SLO; a step's owner is asked as every other
    part asks (``respond.owners.owner_query``: a tool step is owned by ``tool =`` rules too)."""
    from flightlog.respond.owners import OwnerQuery, owner_query, resolve_owner

    slo = status.slo
    wf_team = resolve_owner(engine.config, OwnerQuery(slo.workflow)).team
    if slo.owner:
        return slo.owner, wf_team
    if slo.step or slo.agent:
        kind, code_owner = _step_kind_owner(tx, status)
        query = owner_query(
            slo.workflow, step=slo.step, agent=slo.agent, kind=kind, code_owner=code_owner
        )
        return resolve_owner(engine.config, query).team, wf_team
    return wf_team, wf_team


def _step_kind_owner(tx: Tx, status: SLOStatus) -> tuple[str | None, str | None]:
    """The kind the SLO's step was last recorded with, and the owner given to it in code
    (which wins over the rules, as for a failure of that step); Nones without a step."""
    if not status.slo.step:
        return None, None
    return core.latest_step_kind_owner(tx, status.slo.workflow, status.slo.step, status.now_ns)


def _last_bad_run(tx: Tx, status: SLOStatus) -> str:
    return core.latest_run(tx, status.slo.workflow, ("failed", "degraded"), status.now_ns) or ""


def _facts(engine: Engine, status: SLOStatus, severity: str, tx: Tx) -> dict[str, Any]:
    slo = status.slo
    team, wf_team = _owner(engine, status, tx)
    target = slo.step or slo.agent or "(workflow)"
    firing = [f for f in status.firing if f.rule.severity == severity]
    return {
        "fingerprint": fingerprint(slo.name, severity),
        "workflow": slo.workflow,
        "failure_step": target,
        "root_cause_step": target,
        "root_cause_agent": slo.agent,
        "error_class": "SLOBurn",
        "severity": SEVERITY[severity],
        "root_cause_team": team,
        "workflow_team": wf_team,
        "chain": [],
        "attribution": {
            "slo": status.to_dict(),
            "slo_severity": severity,
            "rules": [f.rule.label for f in firing],
            "summary": summary(status, severity),
        },
    }


def summary(status: SLOStatus, severity: str) -> str:
    slo = status.slo
    firing = [f for f in status.firing if f.rule.severity == severity]
    what = slo.name
    if not firing:
        return f"SLO {what}: burn rate back under its alert thresholds"
    f = firing[0]
    left = status.budget_remaining
    return (
        f"SLO {what} ({slo.target:.2%} over {_days(slo.window_ns)}) is burning its error budget "
        f"{f.long.burn or 0:.1f}x as fast as allowed over {f.rule.label.split(' over ')[1]} "
        f"({f.long.bad} of {f.long.valid} bad); "
        + ("budget remaining: n/a" if left is None else f"budget remaining {left:.0%}")
    )


def _days(ns: int) -> str:
    from flightlog._format import span

    return span(ns)


def sync(engine: Engine, statuses: list[SLOStatus], now_ns: int | None = None) -> dict[str, int]:
    """Open and resolve SLO incidents to match ``statuses``; returns counts."""
    from flightlog.respond import incidents as inc_mod

    now = engine.clock.now_ns() if now_ns is None else now_ns
    opened = resolved = 0
    for status in statuses:
        firing = status.severities()
        for severity in ("page", "ticket"):
            fp = fingerprint(status.slo.name, severity)
            with inc_mod.transaction(engine.store) as tx:
                latest = inc_mod.latest_for(tx, fp)
                is_open = latest is not None and latest.open
                if severity in firing and not is_open:
                    facts = _facts(engine, status, severity, tx)
                    incident = inc_mod.open_incident(
                        engine.store,
                        tx,
                        facts=facts,
                        run_id=_last_bad_run(tx, status),
                        now_ns=now,
                        previous=latest,
                    )
                    alerts_mod.create(tx, incident, [(ROLE[severity], facts["root_cause_team"])])
                    opened += 1
                    continue
                if severity in firing and latest is not None:
                    # Still firing: keep the figures in the message current.
                    tx.execute(
                        "UPDATE respond_incidents SET attribution = ? WHERE id = ?",
                        (
                            _json.dumps(_facts(engine, status, severity, tx)["attribution"]),
                            latest.id,
                        ),
                    )
            if severity not in firing and is_open and latest is not None:
                engine.transition(
                    latest.id,
                    "resolved",
                    actor="slo",
                    note=f"{status.slo.name}: no {severity} rule fires any more",
                )
                resolved += 1
    return {"opened": opened, "resolved": resolved}


_last: weakref.WeakKeyDictionary[Store, int] = weakref.WeakKeyDictionary()  # store -> last pass
_lock = threading.Lock()


def periodic(
    store: Store,
    engine: Engine,
    config_path: Any = None,
    *,
    force: bool = False,
    keep_counts: bool = False,
) -> None:
    """Evaluate the configured SLOs and sync their incidents, at most every ``EVERY_NS``
    per store; with ``keep_counts`` (``flightlog watch``, not the run-end hook, which must
    stay quick) also keep the reliability counts of finished hours. Never raises."""
    try:
        from flightlog.reliability.settings import load_reliability_settings
        from flightlog.reliability.tally import refresh

        now = engine.clock.now_ns()
        with _lock:
            if not force and now - _last.get(store, now - EVERY_NS) < EVERY_NS:
                return
            _last[store] = now
        settings = load_reliability_settings(config_path)
        if settings.slos:
            sync(engine, evaluate_all(store, settings.slos, now, period=False), now)
        if keep_counts:
            refresh(store, now_ns=now, lookback_ns=settings.window_ns)
    except Exception:
        log.exception("SLO evaluation failed")


def evaluate(engine: Engine) -> None:
    """The SLO pass before a response tick (run-end pipeline, server clock): throttled."""
    periodic(engine.store, engine, getattr(engine.config.source, "path", None))


def evaluate_and_count(engine: Engine) -> None:
    """``evaluate``, and keep the reliability counts of finished hours (``flightlog watch``,
    where a pass may take longer than a run end should)."""
    periodic(engine.store, engine, getattr(engine.config.source, "path", None), keep_counts=True)
