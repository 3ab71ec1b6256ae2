"""Redaction: deleting a run's personal or secret values while every proof stays valid.

The leaves never held those values, only salted commitments H(salt || canonical value)
(see ``entry``). Redacting a run:

1. deletes the openings (values and salts) of every entry of the run: its records' and the
   audit records naming it (its attribution);
2. clears in each stored record what its latest entry holds as a commitment (payload
   references become NULL; reasons, messages, error texts, attribute and evidence values
   ``"[redacted]"``), removes the free text of the run's stored attribution (and of the
   incidents it opened or last joined), and deletes the run's payloads that no other run
   references;
3. appends a ``redaction`` entry naming the redacted entries (so ``audit verify`` accepts
   their missing openings), in the same transaction;
4. on SQLite, with ``secure_delete`` on, then checkpoints and truncates the WAL and runs
   ``VACUUM``, so the deleted bytes are gone from the database file and its WAL.

Without the salt, a commitment reveals nothing about the value (a 128-bit random salt
defeats guessing even for low-entropy values such as a yes/no answer).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from flightlog import _json
from flightlog.errors import NotFoundError
from flightlog.ledger.config import FREE_TEXT_KEYS
from flightlog.ledger.entry import REDACTED, committed_paths, step_record_id
from flightlog.ledger.log import Ledger
from flightlog.store import core

if TYPE_CHECKING:
    from flightlog.store.base import Store, StoreReader, Tx

_HASH_FIELDS = ("input_hash", "output_hash")


@dataclass(slots=True)
class Redaction:
    run_id: str
    entries: int
    values: int
    payloads_deleted: int
    payloads_kept: int
    redaction_index: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "entries": self.entries,
            "values": self.values,
            "payloads_deleted": self.payloads_deleted,
            "payloads_kept": self.payloads_kept,
            "redaction_index": self.redaction_index,
        }


def redact_run(ledger: Ledger, run: str, *, reason: str | None = None) -> Redaction:
    """Redact every committed value recorded for ``run`` (an id or unique prefix): payloads,
    reasons, error messages and tracebacks, finding messages, attribute and evidence values,
    and the free text of the run's audit records (its attribution)."""
    store = ledger.store
    run_id = store.resolve_run_id(run)
    sqlite = store.dialect == "sqlite"
    derived = _derived_tables(store)

    def apply(tx: Tx) -> tuple[int, int, int, int, int]:
        if sqlite:
            tx.execute("PRAGMA secure_delete = ON")
        # Concurrent writers: lock the tree head and integrate what is pending (before and
        # after reading the records), so every record read here has its entry, with its
        # openings, in ledger_entries, and no integration moves entries meanwhile.
        ledger.integrate_in(tx)
        rows = core.redactable_rows(tx, run_id)
        if not rows["runs"]:
            raise NotFoundError(f"no run {run_id}")
        ledger.integrate_in(tx)
        # Every entry of the run: its records' and the audit records naming it.
        entries = tx.fetchall(
            "SELECT seq, kind, record_id, entry, openings FROM ledger_entries WHERE run_id = ? "
            "ORDER BY seq",
            (run_id,),
        )
        seqs = [int(r[0]) for r in entries]
        hashes: set[str] = set()
        values = 0
        latest: dict[str, bytes] = {}
        for _seq, kind, record_id, entry, openings in entries:
            if kind in _RECORD_KINDS and entry is not None:
                latest[str(record_id)] = bytes(entry)
            if openings is None:
                continue
            for path, _salt, value in orjson.loads(bytes(openings)):
                values += 1
                if path[-1] in _HASH_FIELDS and isinstance(value, str):
                    hashes.add(value)
        tx.execute(
            "UPDATE ledger_entries SET openings = NULL WHERE run_id = ? AND openings IS NOT NULL",
            (run_id,),
        )
        # The stored records: clear what their latest entry committed (and nothing else, so
        # that every record still matches its leaf).
        # Steps, then findings, then the run: the order writers lock rows in (no deadlock).
        for row in rows["steps"]:
            rid = step_record_id(run_id, row["id"])
            _clear(tx, "steps", row, latest.get(rid), hashes)
        for row in rows["findings"]:
            _clear(tx, "findings", row, latest.get(str(row["id"])), hashes)
        _clear(tx, "runs", rows["runs"][0], latest.get(run_id), hashes)
        _clear_derived(tx, run_id, derived)
        deleted = kept = 0
        for h in sorted(hashes):
            if core.payload_referenced_elsewhere(tx, h, run_id):
                kept += 1
                continue
            core.delete_payload(tx, h)
            deleted += 1
        record: dict[str, Any] = {"run_id": run_id, "entries": seqs, "payloads_deleted": deleted}
        if reason:
            record["reason"] = reason
        index = ledger.append(
            tx,
            [
                ledger.encoder.encode(
                    "redaction",
                    run_id,
                    run_id,
                    record,
                    _now(),
                    top_level_keys=True,
                )
            ],
        )
        return len(seqs), values, deleted, kept, index

    # One transaction, re-run from the start if PostgreSQL aborts it as a deadlock or a
    # serialization failure.
    n_entries, values, deleted, kept, index = store.run_write(apply)
    if sqlite:
        scrub_sqlite(str(store.path))  # type: ignore[attr-defined]
    return Redaction(run_id, n_entries, values, deleted, kept, index)


_RECORD_KINDS = ("run.start", "run.end", "step", "edge", "finding")
_JSON_COLUMNS = ("error", "attributes", "evidence")


def _clear(
    tx: Tx,
    table: str,
    current: dict[str, Any],
    entry: bytes | None,
    hashes: set[str],
) -> None:
    """Clear in a stored record (``current``: its key and redactable columns,
    ``store.core.REDACTABLE``) every field its ledger entry holds as a commitment: payload
    references become NULL, other values ``"[redacted]"``."""
    if entry is None:
        return
    try:
        paths = committed_paths(orjson.loads(entry)["data"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return
    if not paths:
        return
    keys = core.REDACTABLE[table][0]
    changed: dict[str, Any] = {}
    for path in paths:
        top = path[0]
        if top not in current or top in keys:
            continue
        if top in _JSON_COLUMNS:
            if len(path) < 2:  # committed whole: keep the keys, say each value was redacted
                whole = _json.loads(current[top]) if current[top] else None
                if isinstance(whole, dict):
                    changed[top] = {k: REDACTED for k in whole}
                else:
                    changed[top] = None
                continue
            holder = changed.get(top)
            if holder is None:
                holder = _json.loads(current[top]) if current[top] else None
                if not isinstance(holder, dict):
                    continue
                changed[top] = holder
            if path[1] in holder and holder[path[1]] is not None:
                holder[path[1]] = REDACTED
        elif top in _HASH_FIELDS:
            if current[top]:
                hashes.add(str(current[top]))
            changed[top] = None
        else:
            changed[top] = REDACTED
    if not changed:
        return
    core.update_record(
        tx,
        table,
        {k: current[k] for k in keys},
        {
            c: (_json.dumps(v) if v is not None else None) if c in _JSON_COLUMNS else v
            for c, v in changed.items()
        },
    )


def _derived_tables(store: Store) -> set[str]:
    """Which tables derived from a run's records (that may quote its text) exist."""
    found: set[str] = set()
    for table in ("forensics_attributions", "respond_incidents"):
        try:
            with store.read() as tx:
                tx.fetchone(f"SELECT 1 FROM {table} LIMIT 1")
            found.add(table)
        except Exception:
            pass
    return found


def _redact_text(data: Any) -> Any:
    """An attribution (or alternative) with its free text replaced by ``"[redacted]"``."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for key in FREE_TEXT_KEYS:
        v = out.get(key)
        if v is None or v == "" or v == []:
            continue
        if key == "alternatives" and isinstance(v, list):
            out[key] = [_redact_text(a) for a in v]
        elif isinstance(v, list):
            out[key] = [REDACTED for _ in v]
        else:
            out[key] = REDACTED
    return out


def _clear_derived(tx: Any, run_id: str, tables: set[str]) -> None:
    """The run's stored attribution, and that of incidents it opened or last joined, lose
    their free text (evidence, summary, cause), which can quote error messages."""
    if "forensics_attributions" in tables:
        row = tx.fetchone("SELECT data FROM forensics_attributions WHERE run_id = ?", (run_id,))
        if row is not None:
            data = _redact_text(_json.loads(row[0]))
            tx.execute(
                "UPDATE forensics_attributions SET data = ? WHERE run_id = ?",
                (_json.dumps(data), run_id),
            )
    if "respond_incidents" in tables:
        for iid, att in tx.fetchall(
            "SELECT id, attribution FROM respond_incidents WHERE first_run_id = ? "
            "OR last_run_id = ?",
            (run_id, run_id),
        ):
            data = _redact_text(_json.loads(att))
            tx.execute(
                "UPDATE respond_incidents SET attribution = ? WHERE id = ?",
                (_json.dumps(data), iid),
            )


def _now() -> int:
    import time

    return time.time_ns()


def scrub_sqlite(path: str) -> None:
    """Flush the WAL into the database, rebuild the file without free pages, empty the WAL."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def redacted_runs(store: StoreReader, run_ids: list[str]) -> set[str]:
    """Which of ``run_ids`` were redacted (their values are shown as ``[redacted]``, not as
    missing). Empty when the store has no ledger."""
    ids = sorted({r for r in run_ids if r})
    if not ids:
        return set()
    try:
        with store.read() as tx:
            marks = ", ".join("?" * len(ids))
            return {
                str(r[0])
                for r in tx.fetchall(
                    f"SELECT DISTINCT run_id FROM ledger_entries WHERE run_id IN ({marks}) "
                    "AND kind = 'redaction'",
                    ids,
                )
            }
    except Exception:  # no ledger tables (FLIGHTLOG_LEDGER=off) or an unreadable store
        return set()
