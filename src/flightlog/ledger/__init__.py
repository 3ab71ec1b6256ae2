"""The tamper-evident audit ledger: every stored record is a leaf of an RFC 9162 Merkle log.

Modules, one concept each:

- ``rfc9162``     leaf/node hashing, inclusion and consistency proofs (generation, verification)
- ``canonical``   RFC 8785 canonical JSON at orjson speed
- ``entry``       records -> entries, salted commitments for sensitive values
- ``note``        C2SP signed notes, Ed25519 keys in note format
- ``checkpoint``  C2SP tlog-checkpoint bodies
- ``schema``      the ledger's tables
- ``log``         the store-backed log: appends in the write transaction, proofs, checkpoints
- ``proof``       C2SP tlog-proof files for one record
- ``verify``      full verification of a store's log, naming the first divergence
- ``bundle``      self-contained auditor bundles and their offline verification
- ``redact``      deleting sensitive values while every proof stays valid
- ``retention``   the retention window; pruning outside it only
- ``anchor``      publishing checkpoints to a witness file or a git repository

``attach(store)`` is called by ``flightlog.app.open_store`` (the composition root every front
door opens its store with) unless the store is read-only or ``FLIGHTLOG_LEDGER=off``.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flightlog.ledger.config import LedgerConfig
    from flightlog.ledger.log import Ledger
    from flightlog.store.base import Store

__all__ = ["attach", "attached", "ledger_enabled"]

# store -> its ledger, both weakly: the store keeps its ledger alive through the hooks it
# holds, and a ledger holds its store, so a strong value here would keep every store opened
# in the process alive (and its connections open) for the life of the process.
_ledgers: weakref.WeakKeyDictionary[object, weakref.ref[Ledger]] = weakref.WeakKeyDictionary()


def attach(store: Store, config: LedgerConfig | None = None) -> Ledger:
    """Attach the audit ledger to ``store`` (idempotent): create its tables, and register the
    write hook and auditor so every record stored from now on becomes a leaf."""
    ref = _ledgers.get(store)
    existing = ref() if ref is not None else None
    if existing is not None:
        return existing
    from flightlog.ledger.log import Ledger

    ledger = Ledger(store, config)
    store.add_write_hook(ledger.on_write)
    store.add_auditor(ledger.on_audit)
    store.add_close_hook(ledger.sign_on_close)
    _ledgers[store] = weakref.ref(ledger)
    return ledger


def attached(store: object) -> Ledger | None:
    """The ledger ``attach`` wired to ``store``, or None (the ledger is off for it)."""
    ref = _ledgers.get(store)
    return ref() if ref is not None else None


def ledger_enabled() -> bool:
    """False when ``FLIGHTLOG_LEDGER`` is ``off`` (or ``0``, ``false``, ``no``), or, when the
    variable is unset, ``[ledger] enabled = false`` in ``flightlog.toml``."""
    import os

    from flightlog.ledger.config import _file_section, is_on

    if "FLIGHTLOG_LEDGER" in os.environ:
        return is_on(os.environ["FLIGHTLOG_LEDGER"])
    enabled = _file_section(os.environ).enabled
    return is_on(None if enabled is None else str(enabled).lower())
