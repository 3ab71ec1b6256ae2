"""Incidents: failed runs grouped by fingerprint, with a lifecycle and a timeline.

The fingerprint of a failed run is (workflow, failure-point step, root-cause step, error
class), taken from its attribution (``flightlog.forensics.why``). Every failed run joins the
open incident with its fingerprint, or opens one. States::

    triggered --ack--> acknowledged --resolve--> resolved
        \\___________________resolve______________/

An incident resolves itself after ``auto_resolve_after`` consecutive successful runs of its
workflow; a failure with the same fingerprint after that opens a *new* incident linked to
the old one (``previous_id``/``next_id``). Every transition is written to the incident's
timeline and, in the same transaction, to the audit ledger (``incident.transition``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from flightlog import _json
from flightlog.errors import InputError, NotFoundError
from flightlog.model import INCIDENT_OPENING_FIELDS
from flightlog.store.base import Store, Tx

STATES: tuple[str, ...] = ("triggered", "acknowledged", "resolved")
_ALLOWED = {("triggered", "acknowledged"), ("triggered", "resolved"), ("acknowledged", "resolved")}

COLUMNS = (
    "id, fingerprint, workflow, failure_step, root_cause_step, root_cause_agent, "
    "error_class, severity, status, root_cause_team, workflow_team, opened_ns, "
    "acknowledged_ns, acknowledged_by, resolved_ns, resolved_by, updated_ns, "
    "last_failure_ns, run_count, first_run_id, last_run_id, success_streak, previous_id, "
    "next_id, chain, attribution"
)


def fingerprint(workflow: str, failure_step: str, root_cause_step: str, error_class: str) -> str:
    """A stable 16-hex key for (workflow, failure-point step, root-cause step, error class)."""
    text = "\x1f".join((workflow, failure_step, root_cause_step, error_class))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Incident:
    id: int
    fingerprint: str
    workflow: str
    failure_step: str
    root_cause_step: str
    root_cause_agent: str | None
    error_class: str
    severity: str
    status: str
    root_cause_team: str
    workflow_team: str
    opened_ns: int
    acknowledged_ns: int | None
    acknowledged_by: str | None
    resolved_ns: int | None
    resolved_by: str | None
    updated_ns: int
    last_failure_ns: int
    run_count: int
    first_run_id: str
    last_run_id: str
    success_streak: int
    previous_id: int | None
    next_id: int | None
    chain: list[str]
    attribution: dict[str, Any]  # the latest run's attribution, summarised (see engine)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Incident:
        values = list(row)
        values[0] = int(values[0])
        values[24] = _json.loads(values[24]) or []
        values[25] = _json.loads(values[25]) or {}
        return cls(*values)

    @property
    def open(self) -> bool:
        return self.status != "resolved"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TimelineEntry:
    incident_id: int
    seq: int
    at_ns: int
    kind: str  # opened | run | acknowledged | resolved | reopened | notified | delivered | ...
    actor: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def transaction(store: Store) -> Iterator[Tx]:
    """A write transaction of the response layer. Its writes read before they write (the
    next incident id, timeline and outbox sequence numbers, the incident a failure joins,
    group state), so each holds the lock ``respond`` from its start: engines in several
    processes on one PostgreSQL store take turns (SQLite's writes already do). Lock order:
    ``respond``, then rows, then the audit ledger."""
    with store.transaction() as tx:
        tx.lock("respond")
        yield tx


def add_timeline(
    tx: Tx, incident_id: int, at_ns: int, kind: str, actor: str, detail: dict[str, Any]
) -> None:
    row = tx.fetchone(
        "SELECT COALESCE(MAX(seq), 0) FROM respond_timeline WHERE incident_id = ?",
        (incident_id,),
    )
    seq = int(row[0]) + 1 if row else 1
    tx.execute(
        "INSERT INTO respond_timeline (incident_id, seq, at_ns, kind, actor, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (incident_id, seq, at_ns, kind, actor, _json.dumps(detail)),
    )


def get(tx: Tx, incident_id: int) -> Incident:
    row = tx.fetchone(f"SELECT {COLUMNS} FROM respond_incidents WHERE id = ?", (incident_id,))
    if row is None:
        raise NotFoundError(
            f"no incident #{incident_id}; `flightlog incidents` lists the incidents"
        )
    return Incident.from_row(row)


def parse_id(text: str | int) -> int:
    """``12``, ``#12`` or ``INC-12`` -> 12."""
    s = str(text).strip().lstrip("#")
    if s.upper().startswith("INC-"):
        s = s[4:]
    try:
        return int(s)
    except ValueError as exc:
        raise InputError(f"{text!r} is not an incident id; expected a number such as 12") from exc


def latest_for(tx: Tx, fp: str) -> Incident | None:
    row = tx.fetchone(
        f"SELECT {COLUMNS} FROM respond_incidents WHERE fingerprint = ? ORDER BY id DESC LIMIT 1",
        (fp,),
    )
    return Incident.from_row(row) if row else None


def list_incidents(
    tx: Tx, *, status: str | None = None, workflow: str | None = None, limit: int = 100
) -> list[Incident]:
    clauses, params = [], []
    if status == "open":
        clauses.append("status <> 'resolved'")
    elif status:
        clauses.append("status = ?")
        params.append(status)
    if workflow:
        clauses.append("workflow = ?")
        params.append(workflow)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = tx.fetchall(
        f"SELECT {COLUMNS} FROM respond_incidents{where} ORDER BY id DESC LIMIT ?",
        [*params, limit],
    )
    return [Incident.from_row(r) for r in rows]


def timeline(tx: Tx, incident_id: int) -> list[TimelineEntry]:
    rows = tx.fetchall(
        "SELECT incident_id, seq, at_ns, kind, actor, detail FROM respond_timeline "
        "WHERE incident_id = ? ORDER BY seq",
        (incident_id,),
    )
    return [
        TimelineEntry(int(r[0]), int(r[1]), int(r[2]), r[3], r[4], _json.loads(r[5]) or {})
        for r in rows
    ]


def _audit_transition(
    store: Store,
    tx: Tx,
    inc: Incident,
    before: str | None,
    after: str,
    actor: str,
    at_ns: int,
    note: str | None,
) -> None:
    data = {
        "id": f"incident-{inc.id}-{after}",  # each state is entered once per incident
        "incident": inc.id,
        "fingerprint": inc.fingerprint,
        "workflow": inc.workflow,
        "from": before,
        "to": after,
        "actor": actor,
        "at_ns": at_ns,
        "run_id": inc.last_run_id,
    }
    if note:
        data["note"] = note
    add_timeline(
        tx,
        inc.id,
        at_ns,
        after if before else "opened",
        actor,
        {k: v for k, v in data.items() if k not in ("id", "incident", "at_ns", "actor")},
    )
    if before is None:
        # What identifies the incident, logged when it opens so 'audit verify' can tell an
        # edited incident row (flightlog.ledger.coverage).
        data.update({name: getattr(inc, name) for name in INCIDENT_OPENING_FIELDS})
    store.audit(tx, "incident.transition", data)


def open_incident(
    store: Store,
    tx: Tx,
    *,
    facts: dict[str, Any],
    run_id: str,
    now_ns: int,
    previous: Incident | None,
) -> Incident:
    """Open a new incident for a failed run; ``facts`` holds the fingerprint fields, teams,
    severity, chain and attribution summary. Links it to ``previous`` (a resolved incident
    with the same fingerprint) when there is one."""
    row = tx.fetchone("SELECT COALESCE(MAX(id), 0) FROM respond_incidents")
    new_id = int(row[0]) + 1 if row else 1
    tx.execute(
        f"INSERT INTO respond_incidents ({COLUMNS}) VALUES ({', '.join('?' * 26)})",
        (
            new_id,
            facts["fingerprint"],
            facts["workflow"],
            facts["failure_step"],
            facts["root_cause_step"],
            facts.get("root_cause_agent"),
            facts["error_class"],
            facts["severity"],
            "triggered",
            facts["root_cause_team"],
            facts["workflow_team"],
            now_ns,
            None,
            None,
            None,
            None,
            now_ns,
            now_ns,
            1,
            run_id,
            run_id,
            0,
            previous.id if previous else None,
            None,
            _json.dumps(facts.get("chain", [])),
            _json.dumps(facts.get("attribution", {})),
        ),
    )
    inc = get(tx, new_id)
    _audit_transition(store, tx, inc, None, "triggered", "flightlog", now_ns, None)
    if previous is not None:
        tx.execute("UPDATE respond_incidents SET next_id = ? WHERE id = ?", (new_id, previous.id))
        add_timeline(
            tx,
            previous.id,
            now_ns,
            "reopened",
            "flightlog",
            {"next_incident": new_id, "run_id": run_id},
        )
        add_timeline(tx, new_id, now_ns, "follows", "flightlog", {"previous_incident": previous.id})
    return inc


def add_failed_run(
    tx: Tx,
    inc: Incident,
    *,
    run_id: str,
    now_ns: int,
    attribution: dict[str, Any],
    store: Store | None = None,
) -> Incident:
    """Count another failed run into an open incident (logged as ``incident.run`` when a
    ``store`` with a ledger is given)."""
    tx.execute(
        "UPDATE respond_incidents SET run_count = run_count + 1, last_run_id = ?, "
        "last_failure_ns = ?, updated_ns = ?, success_streak = 0, attribution = ? "
        "WHERE id = ?",
        (run_id, now_ns, now_ns, _json.dumps(attribution), inc.id),
    )
    add_timeline(tx, inc.id, now_ns, "run", "flightlog", {"run_id": run_id})
    after = get(tx, inc.id)
    if store is not None:
        store.audit(
            tx,
            "incident.run",
            {
                "id": f"incident-{inc.id}-run-{run_id}",
                "incident": inc.id,
                "run_id": run_id,
                "run_count": after.run_count,
                "at_ns": now_ns,
            },
        )
    return after


def transition(
    store: Store,
    tx: Tx,
    incident_id: int,
    to: str,
    *,
    actor: str,
    now_ns: int,
    note: str | None = None,
) -> Incident:
    """Move an incident to ``to`` (``acknowledged`` or ``resolved``)."""
    inc = get(tx, incident_id)
    if (inc.status, to) not in _ALLOWED:
        if inc.status == to:
            raise InputError(f"incident #{inc.id} is already {to}")
        raise InputError(
            f"incident #{inc.id} is {inc.status}; it cannot become {to} "
            "(triggered -> acknowledged -> resolved)"
        )
    if to == "acknowledged":
        tx.execute(
            "UPDATE respond_incidents SET status = ?, acknowledged_ns = ?, acknowledged_by = ?, "
            "updated_ns = ? WHERE id = ?",
            (to, now_ns, actor, now_ns, inc.id),
        )
    else:
        tx.execute(
            "UPDATE respond_incidents SET status = ?, resolved_ns = ?, resolved_by = ?, "
            "updated_ns = ? WHERE id = ?",
            (to, now_ns, actor, now_ns, inc.id),
        )
    after = get(tx, inc.id)
    _audit_transition(store, tx, after, inc.status, to, actor, now_ns, note)
    return after


def record_success(
    store: Store, tx: Tx, *, workflow: str, run_id: str, now_ns: int, auto_resolve_after: int
) -> list[Incident]:
    """Count a successful run of ``workflow``; resolve incidents that reached the streak."""
    # SLO burn-rate incidents (fingerprint slo/...) resolve when the burn stops, not here.
    tx.execute(
        "UPDATE respond_incidents SET success_streak = success_streak + 1 "
        "WHERE workflow = ? AND status <> 'resolved' AND fingerprint NOT LIKE 'slo/%'",
        (workflow,),
    )
    rows = tx.fetchall(
        "SELECT id FROM respond_incidents WHERE workflow = ? AND status <> 'resolved' "
        "AND success_streak >= ? AND fingerprint NOT LIKE 'slo/%'",
        (workflow, auto_resolve_after),
    )
    resolved = []
    for (iid,) in rows:
        resolved.append(
            transition(
                store,
                tx,
                int(iid),
                "resolved",
                actor="auto",
                now_ns=now_ns,
                note=f"{auto_resolve_after} consecutive successful runs (last {run_id})",
            )
        )
    return resolved


def reset_streaks(tx: Tx, workflow: str) -> None:
    """A failed run of ``workflow`` breaks every open incident's success streak."""
    tx.execute(
        "UPDATE respond_incidents SET success_streak = 0 WHERE workflow = ? "
        "AND status <> 'resolved'",
        (workflow,),
    )
