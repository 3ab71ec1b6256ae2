"""Keeping attributions: one row per run in the ``forensics`` component's table, appended to
the audit ledger (``store.audit(tx, "attribution", ...)``) in the same transaction."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flightlog import _json
from flightlog.forensics.attribution import Attribution
from flightlog.store.base import Migration

if TYPE_CHECKING:
    from flightlog.store.base import Store, StoreReader

MIGRATIONS = (
    Migration(
        1,
        (
            """CREATE TABLE forensics_attributions (
                run_id TEXT PRIMARY KEY,
                created_ns BIGINT NOT NULL,
                root_step_id TEXT,
                confidence DOUBLE PRECISION NOT NULL,
                data TEXT NOT NULL
            )""",
        ),
        "attributions computed when runs end",
    ),
)

_migrated: set[tuple[int, str]] = set()


def _ensure(store: Store) -> None:
    key = (id(store), getattr(store, "url", ""))
    if key not in _migrated:
        store.migrate("forensics", MIGRATIONS)
        _migrated.add(key)


def record_attribution(store: Store, att: Attribution) -> bool:
    """Store the attribution and audit it, once per run; True if it was new."""
    _ensure(store)
    data = att.to_dict()
    with store.transaction() as tx:
        tx.lock(f"attribution:{att.run_id}")  # stored and audited once, by one writer
        if tx.fetchone("SELECT 1 FROM forensics_attributions WHERE run_id = ?", (att.run_id,)):
            return False
        tx.execute(
            "INSERT INTO forensics_attributions (run_id, created_ns, root_step_id, confidence, "
            "data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
            (
                att.run_id,
                time.time_ns(),
                att.root_cause.id if att.root_cause else None,
                float(att.confidence),
                _json.dumps(data),
            ),
        )
        store.audit(tx, "attribution", data)
    return True


def stored_attribution(store: StoreReader, run_id: str) -> Attribution | None:
    """The attribution recorded when the run ended, if any. Reads only: a store whose
    ``forensics`` tables were never created holds none."""
    if (id(store), store.url) not in _migrated and store.schema_version("forensics") == 0:
        return None
    with store.read() as tx:
        row = tx.fetchone("SELECT data FROM forensics_attributions WHERE run_id = ?", (run_id,))
    return Attribution.from_dict(_json.loads(row[0])) if row else None


def audited_attribution(store: Store, run_id: str) -> Attribution:
    """The run's stored attribution; when there is none yet, attribute the run now, store and
    audit it, and return what was stored (another process may have stored one first)."""
    att = stored_attribution(store, run_id)
    if att is None:
        from flightlog.forensics.attribution import why

        record_attribution(store, why(store, run_id))
        att = stored_attribution(store, run_id)
        assert att is not None
    return att
