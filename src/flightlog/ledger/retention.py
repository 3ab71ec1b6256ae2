"""Retention: how long records are kept, and pruning only outside that window.

The EU AI Act asks deployers to keep automatically generated logs "for a period appropriate
to the intended purpose of the high-risk AI system, of at least six months" (Art. 26(6); the
same for providers in Art. 19(1)). The default window is therefore 183 days, and
``prune`` refuses any cut-off inside it, whatever the caller asks.

Pruning deletes the records of runs that started before the cut-off, their openings and
their entries' content, but keeps every leaf hash and interior hash: the tree, its
checkpoints and the proofs of the remaining entries stay valid, and a ``retention.prune``
entry names what was pruned, so ``audit verify`` can tell pruning from tampering.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flightlog.errors import LedgerError
from flightlog.ledger.log import Ledger
from flightlog.store import core
from flightlog.store.base import Tx, chunked

# The kinds of entry that log a run's records (its run, steps, edges and findings).
RECORD_KINDS = ("run.start", "run.end", "step", "edge", "finding")

DAY_NS = 86_400 * 1_000_000_000


@dataclass(slots=True)
class Pruned:
    runs: int
    entries: int
    prune_index: int

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "entries": self.entries, "prune_index": self.prune_index}


def earliest_cutoff(ledger: Ledger, now_ns: int | None = None) -> int:
    """The latest cut-off ``prune`` accepts: now minus the retention window."""
    now = time.time_ns() if now_ns is None else now_ns
    return now - int(ledger.config.retention_days * DAY_NS)


def prune(ledger: Ledger, before_ns: int, *, now_ns: int | None = None) -> Pruned:
    """Prune runs that started before ``before_ns``; refuses cut-offs inside the window."""
    limit = earliest_cutoff(ledger, now_ns)
    if before_ns > limit:
        days = ledger.config.retention_days
        raise LedgerError(
            f"refusing to prune: the cut-off is inside the {days:g}-day retention window "
            f"(records newer than {days:g} days must be kept); choose a cut-off at least "
            f"{days:g} days in the past"
        )
    store = ledger.store

    def apply(tx: Tx) -> Pruned:
        # Concurrent writers: lock the tree head and integrate what is pending, before the
        # records are deleted and after (an entry of a record committed meanwhile is then in
        # the log too), so that every entry of a deleted record is pruned below.
        ledger.integrate_in(tx)
        runs, stored_runs = core.delete_runs_started_before(tx, before_ns)
        ledger.integrate_in(tx)
        seqs: list[int] = []
        kinds = ", ".join("?" * len(RECORD_KINDS))
        for part in chunked(runs, 500):
            marks = ", ".join("?" * len(part))
            seqs += [
                int(r[0])
                for r in tx.fetchall(
                    f"SELECT seq FROM ledger_entries WHERE run_id IN ({marks}) "
                    f"AND kind IN ({kinds})",
                    [*part, *RECORD_KINDS],
                )
            ]
        seqs.sort()
        for part in chunked(seqs, 500):
            marks = ", ".join("?" * len(part))
            tx.execute(
                f"UPDATE ledger_entries SET entry = NULL, openings = NULL WHERE seq IN ({marks})",
                list(part),
            )
        index = -1
        if seqs:
            index = ledger.append(
                tx,
                [
                    ledger.encoder.encode(
                        "retention.prune",
                        "retention",
                        None,
                        {"before_ns": str(before_ns), "runs": stored_runs, "entries": seqs},
                        time.time_ns(),
                        top_level_keys=True,
                    )
                ],
            )
        return Pruned(stored_runs, len(seqs), index)

    # One transaction, re-run from the start if PostgreSQL aborts it as a deadlock or a
    # serialization failure (it locks the tree head, then runs and steps).
    return store.run_write(apply)
