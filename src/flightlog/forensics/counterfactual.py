"""Attributions confirmed by counterfactual replay (``flightlog why RUN --confirm``).

``decisive_step`` (``replay``) re-executes a failed run with one candidate step corrected at a
time; the earliest correction that turns the failure into success is the decisive step. The
outcome is kept here (component ``counterfactual``) and appended to the audit ledger
(``attribution.confirmed``), so ``flightlog why`` can say "confirmed by counterfactual replay"
next to the attribution, without rewriting the attribution that was stored when the run
ended (facts are append-only).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from flightlog import _json
from flightlog.store.base import Migration

if TYPE_CHECKING:
    from flightlog.store.base import Store

MIGRATIONS = (
    Migration(
        1,
        (
            """CREATE TABLE counterfactual_confirmations (
                run_id TEXT NOT NULL,
                created_ns BIGINT NOT NULL,
                decisive_step TEXT,
                confirmed INTEGER NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (run_id, created_ns)
            )""",
        ),
        "outcomes of counterfactual replays of failed runs",
    ),
)


def record_confirmation(
    store: Store, run_id: str, outcome: dict[str, Any], root_step: str | None, entry: str
) -> dict[str, Any]:
    """Keep the outcome of ``decisive_step`` for ``run_id``; ``confirmed`` is True when the
    decisive step is the attribution's root cause."""
    store.migrate("counterfactual", MIGRATIONS)
    decisive = outcome.get("decisive")
    data = {
        "run_id": run_id,
        "entry": entry,
        "decisive": None
        if decisive is None
        else {k: decisive.get(k) for k in ("step", "index", "agent", "owner")},
        "root_cause": root_step,
        "confirmed": decisive is not None and decisive.get("step") == root_step,
        "tried": outcome.get("tried", []),
        "created_ns": time.time_ns(),
    }
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO counterfactual_confirmations (run_id, created_ns, decisive_step, "
            "confirmed, data) VALUES (?, ?, ?, ?, ?)",
            (
                run_id,
                data["created_ns"],
                decisive.get("step") if decisive else None,
                1 if data["confirmed"] else 0,
                _json.dumps(data),
            ),
        )
        store.audit(tx, "attribution.confirmed", data)
    return data


def latest_confirmation(store: Store, run_id: str) -> dict[str, Any] | None:
    """The latest counterfactual outcome recorded for ``run_id`` (None if never replayed)."""
    if store.schema_version("counterfactual") == 0:
        return None
    with store.read() as tx:
        row = tx.fetchone(
            "SELECT data FROM counterfactual_confirmations WHERE run_id = ? "
            "ORDER BY created_ns DESC LIMIT 1",
            (run_id,),
        )
    return _json.loads(row[0]) if row else None


def describe(data: dict[str, Any]) -> str:
    d = data.get("decisive")
    if d is None:
        return (
            "counterfactual replay: no single corrected step turned the failure into success "
            f"({len(data.get('tried') or [])} tried)"
        )
    verdict = (
        "confirms the root cause"
        if data.get("confirmed")
        else f"disagrees with the root cause ({data.get('root_cause')})"
    )
    return (
        f"counterfactual replay: correcting step {d.get('index')} {d.get('step')} turns the "
        f"failure into success; this {verdict}"
    )
