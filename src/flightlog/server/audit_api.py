"""``GET /api/v1/audit/records/{record}``: whether a record is provable yet, and its proof.

A record is *acknowledged* once durable and *provable* once its ledger entry is integrated
into the tree (docs/audit.md, "Sequencing"). This route says which:

- integrated: 200, ``state: "integrated"``, the leaf ``index`` and ``proof``, the C2SP
  tlog-proof ``flightlog audit prove`` writes (the entry, its inclusion proof and the signed
  checkpoint), which ``flightlog audit verify-bundle FILE --key KEY`` verifies offline;
- pending (PostgreSQL, before the integrator reaches it): 202, ``state: "pending"`` and a
  ``Retry-After`` header;
- no entry: 404; the audit ledger off on this server: 409.

Access is that of the other read routes: a key's project bounds what it may learn. An entry
of a run of another project answers the same 404 as an entry that does not exist; entries
that belong to no run (incidents, keys, drills) are server-wide and need an ``admin`` key.
Without keys, every entry is visible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from flightlog.errors import NotFoundError
from flightlog.server.api import ApiError, json_response
from flightlog.server.guard import principal

if TYPE_CHECKING:
    from flightlog.ledger.log import Ledger
    from flightlog.store.base import Store, StoreReader

RETRY_AFTER_S = 1  # the integrator polls every 0.1 s; a second covers a batch under load
LEDGER_OFF = (
    "the audit ledger is off on this server (FLIGHTLOG_LEDGER=off or [ledger] enabled = "
    "false in flightlog.toml): records have no ledger entries and no proofs"
)


def _unknown(record: str) -> str:
    return (
        f"no ledger entry for {record!r}; give a leaf index (#N), a run id, a step id or a "
        "finding id"
    )


class AuditApi:
    """Proof state of one record, read from the ledger attached to the server's store."""

    def __init__(self, store: Store, store_for: Callable[[Request], StoreReader]) -> None:
        self.store = store
        self.store_for = store_for

    def _ledger(self) -> Ledger:
        from flightlog.ledger import attached

        ledger = attached(self.store)
        if ledger is None:
            raise ApiError(409, LEDGER_OFF)
        return ledger

    def _resolve(self, request: Request, record: str) -> str:
        """A run id prefix resolved within the caller's project, so that another project's
        run never makes it ambiguous (and is never chosen)."""
        if principal(request.scope) is None or not 0 < len(record) < 32:
            return record
        if any(c not in "0123456789abcdef" for c in record.lower()):
            return record
        try:
            return str(self.store_for(request).resolve_run_id(record))
        except NotFoundError:
            return record

    def _visible(self, request: Request, run_id: str | None) -> bool:
        key = principal(request.scope)
        if key is None:
            return True
        if run_id is None:  # server-wide records (incidents, keys, drills)
            return key.scope == "admin"
        visible = getattr(self.store_for(request), "visible_runs", None)
        return visible is None or run_id in visible([run_id])

    def record(self, request: Request) -> Response:
        from flightlog.ledger.proof import PendingEntryError, find_entry, prove

        raw = str(request.path_params["record"]).strip()
        if not raw or len(raw) > 512:
            raise ApiError(
                400,
                "give a record: a leaf index (#N), a run id, a step id or a finding id "
                "(at most 512 characters)",
            )
        if "\x00" in raw:
            raise ApiError(400, "a record id cannot contain a NUL character")
        digits = raw[1:] if raw.startswith("#") else raw
        leaf_index = digits.isdigit() and (raw != digits or len(digits) < 16)  # as find_entry
        if leaf_index and not (digits.isascii() and len(digits) < 19):  # reads it: no such leaf
            raise ApiError(404, _unknown(raw))
        ledger = self._ledger()
        record = self._resolve(request, raw)
        pending_id: int | None = None
        with ledger.store.read() as tx:
            try:
                seq = find_entry(ledger, tx, record)
            except PendingEntryError as exc:
                pending_id = exc.pending_id
                row = tx.fetchone("SELECT run_id FROM ledger_pending WHERE id = ?", (pending_id,))
            else:
                row = tx.fetchone("SELECT run_id FROM ledger_entries WHERE seq = ?", (seq,))
        if row is None and pending_id is None:  # a leaf index beyond the log
            raise ApiError(404, _unknown(raw))
        # (a pending row gone meanwhile was integrated: its run is unknown here, so only
        # callers who may see every entry learn that it exists)
        run_id = None if row is None or row[0] is None else str(row[0])
        if not self._visible(request, run_id):
            raise ApiError(404, _unknown(raw))
        if pending_id is not None:
            return self._pending(raw, pending_id, run_id)
        try:
            proof = prove(ledger, record)
        except PendingEntryError as exc:  # a newer entry of the record arrived meanwhile
            return self._pending(raw, exc.pending_id, run_id)
        return json_response(
            {
                "record": raw,
                "state": "integrated",
                "run_id": run_id,
                "index": proof.index,
                "checkpoint_size": proof.checkpoint.size,
                "origin": proof.checkpoint.origin,
                "proof": proof.to_text(),
            }
        )

    def _pending(self, record: str, pending_id: int, run_id: str | None = None) -> Response:
        response = json_response(
            {
                "record": record,
                "state": "pending",
                "run_id": run_id,
                "pending_id": pending_id,
                "retry_after": RETRY_AFTER_S,
                "message": "acknowledged (stored durably) but not provable yet: its ledger "
                "entry waits for the integrator; ask again after Retry-After seconds",
            },
            202,
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
