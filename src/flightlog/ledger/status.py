"""``flightlog audit status``: the log's size, last checkpoint, key and last verification."""

from __future__ import annotations

import base64
from typing import Any

from flightlog.ledger import anchor
from flightlog.ledger.log import INTEGRATOR_ROLE, Ledger


def status(ledger: Ledger) -> dict[str, Any]:
    with ledger.store.read() as tx:
        size, root = ledger.head(tx)
        row = tx.fetchone(
            "SELECT created_ns, verified_ns, verified_ok, verified_message FROM ledger_state "
            "WHERE id = 1"
        )
        last = tx.fetchone(
            "SELECT size, created_ns FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"
        )
        n_cps = tx.fetchone("SELECT COUNT(*) FROM ledger_checkpoints")
        pending = ledger.pending(tx)
        integrator = None
        if ledger.pending_mode:
            from flightlog.store.leader import holder

            held = holder(tx, INTEGRATOR_ROLE)
            integrator = {"pid": held[0], "host": held[1]} if held else None
    key_path = ledger.key_path
    verifier = None
    if key_path is not None and key_path.exists():
        verifier = ledger.verifier().encode()
    witness = ledger.config.witness_path
    return {
        "origin": ledger.origin,
        "size": size,
        "root": base64.b64encode(root).decode(),
        "created_ns": row[0] if row else None,
        "checkpoints": int(n_cps[0]) if n_cps else 0,
        "last_checkpoint": {"size": int(last[0]), "created_ns": int(last[1])} if last else None,
        "unsigned_entries": size - (int(last[0]) if last else 0),
        # acknowledged (stored durably) but not yet integrated into the tree: not provable
        # yet (stores with concurrent writers; always 0 on SQLite)
        "pending_entries": pending,
        "sequencing": "integrator" if ledger.pending_mode else "inline",
        # which process integrates now (PostgreSQL); None: nobody (no writer is running)
        "integrator": integrator,
        "key_path": str(key_path) if key_path else None,
        "verifier_key": verifier,
        "witness_path": str(anchor.witness_file(witness, ledger.origin)) if witness else None,
        "retention_days": ledger.config.retention_days,
        "last_verification": (
            {"at_ns": int(row[1]), "ok": bool(row[2]), "summary": row[3]}
            if row and row[1] is not None
            else None
        ),
    }
