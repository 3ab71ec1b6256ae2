"""Drills on record: each drill's result is kept in the store it was run for (component
``drills``) and appended to that store's audit ledger (``drill``), so the board report can
say which drills ran and what they found, and an auditor can verify it. The record lives
with the reliability figures that report it; ``flightlog.drills`` (which runs drills, above
the SDK) writes it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flightlog import _json
from flightlog.store.base import Migration

if TYPE_CHECKING:
    from flightlog.store.base import Store

MIGRATIONS = (
    Migration(
        1,
        (
            """CREATE TABLE drills (
                id BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                started_ns BIGINT NOT NULL,
                ended_ns BIGINT NOT NULL,
                passed INTEGER NOT NULL,
                data TEXT NOT NULL
            )""",
            "CREATE INDEX drills_started ON drills (started_ns)",
        ),
        "fire drills and their results",
    ),
)


def summary(report_dict: dict[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a drill (the figures and every miss, not the whole spec)."""
    keys = (
        "name",
        "passed",
        "started_ns",
        "ended_ns",
        "live",
        "faults_injected",
        "detection_rate",
        "attribution_accuracy",
        "paged_rate",
        "mttd_ns",
        "alert_latency_ns",
        "controls",
        "control_failures",
        "errors",
    )
    out = {k: report_dict.get(k) for k in keys}
    out["misses"] = [
        {"run_id": c["run_id"], "injected": c["injected"], "misses": c["misses"]}
        for c in report_dict.get("checks", [])
        if c.get("misses")
    ]
    return out


def record_drill(store: Store, report_dict: dict[str, Any]) -> int:
    """Keep a drill's result and audit it in one transaction; returns its id."""
    store.migrate("drills", MIGRATIONS)
    data = summary(report_dict)
    with store.transaction() as tx:
        tx.lock("drills")  # the next id: one writer at a time
        row = tx.fetchone("SELECT COALESCE(MAX(id), 0) FROM drills")
        new_id = int(row[0]) + 1 if row else 1
        data["id"] = new_id
        tx.execute(
            "INSERT INTO drills (id, name, started_ns, ended_ns, passed, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                new_id,
                str(data["name"]),
                int(data["started_ns"] or 0),
                int(data["ended_ns"] or 0),
                1 if data["passed"] else 0,
                _json.dumps(data),
            ),
        )
        store.audit(tx, "drill", data)
    return new_id


def list_drills(store: Store, since_ns: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Drills on record, newest first (empty when none was ever run against the store)."""
    if store.schema_version("drills") == 0:
        return []
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT data FROM drills WHERE started_ns >= ? ORDER BY started_ns DESC LIMIT ?",
            (since_ns, limit),
        )
    return [_json.loads(r[0]) for r in rows]
