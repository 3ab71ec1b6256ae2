"""The composition root: where a store is given the capabilities that act on its records.

``flightlog.store.open_store`` opens a store and does nothing else. Every front door opens its
store here instead (``flightlog.configure`` and ``flightlog.open_store``, ``flightlog serve``,
the CLI, the demo, drills), so each gets the same wiring:

- the audit ledger (``flightlog.ledger.attach``): a write hook that appends every stored
  record to the Merkle log in the same transaction, the auditor behind ``store.audit``, and a
  checkpoint signed on close; not for a read-only store, nor with ``FLIGHTLOG_LEDGER=off``
  (or ``[ledger] enabled = false``);
- the run-end pipeline (``flightlog.pipeline``: status, detect, attribute, respond), which
  front doors call with this store when runs end (the SDK's writer, the server's ingestor,
  ``flightlog watch``; ``record_ended`` for whole runs read from files, such as imported
  transcripts), and its periodic work on a ``pipeline.Clock`` over this store.

It sits above every capability it wires and below the front doors (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os

    from flightlog.model import Batch
    from flightlog.store.base import Store

__all__ = ["check_config", "open_store", "record_ended", "wire"]


def open_store(url: str | None = None, *, readonly: bool = False, create: bool = True) -> Store:
    """Open the store at ``url`` (see ``flightlog.store.open_store`` for ``readonly`` and
    ``create``) with the audit ledger attached, unless read-only or the ledger is off."""
    from flightlog.store import open_store as open_bare

    return wire(open_bare(url, readonly=readonly, create=create))


def wire(store: Store) -> Store:
    """Attach the capabilities that act on ``store``'s records as they are written (the
    audit ledger, unless ``store`` is read-only or the ledger is off); returns ``store``.
    The store is closed if wiring fails, so a bad ledger setting leaks no connection."""
    if store.readonly:
        return store
    from flightlog.ledger import attach, ledger_enabled

    try:
        if ledger_enabled():
            attach(store)
    except BaseException:
        store.close()
        raise
    return store


def record_ended(store: Store, batches: Sequence[Batch]) -> list[str]:
    """Store batches that each hold one whole, ended run (an imported transcript), one
    transaction each, then move those runs through the run-end pipeline (detection,
    attribution, response). Returns the run ids in order."""
    from flightlog import pipeline

    ids: list[str] = []
    for batch in batches:
        store.write(batch)
        ids.extend(run.id for run in batch.runs)
    pipeline.runs_ended(store, ids)
    return ids


def check_config(path: str | os.PathLike[str] | None = None) -> None:
    """Check every section of ``flightlog.toml`` that the capabilities read (response,
    owners, reliability and SLOs, detection, the judge, the ledger), so that a mistake stops
    ``flightlog.configure()`` naming its line rather than the first run that needs it. Each
    check runs once per change of the file (``flightlog.config.LOADER``). Privacy is checked
    by ``flightlog.privacy.load`` (it may create the hashing salt) and ``[server]`` by
    ``flightlog serve``. ``path`` is a ``--config`` file (default: the file found as usual)."""
    from flightlog.config import find_config_file, load_config

    if find_config_file(path) is None:
        return
    from flightlog.detect.settings import detect_section
    from flightlog.forensics.judge import JudgeSection
    from flightlog.ledger.config import LedgerSection
    from flightlog.reliability.settings import reliability_settings
    from flightlog.respond.config import respond_config

    cfg = load_config(path)
    respond_config(cfg)
    reliability_settings(cfg)
    detect_section(cfg)
    cfg.typed(JudgeSection, "judge")
    cfg.typed(LedgerSection, "ledger")
