"""Redaction: deleting a run's personal or secret values while every proof stays valid.

The leaves never held those values, only salted commitments H(salt || canonical value)
(see ``entry``). Redacting a run:

1. deletes the openings (values and salts) of every entry of the run's records;
2. clears the committed fields in the stored records (payload references become NULL,
   sensitive attributes ``"[redacted]"``) and deletes the run's payloads that no other run
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
from typing import Any

import orjson

from flightlog import _json
from flightlog.errors import NotFoundError
from flightlog.ledger.entry import REDACTED, edge_id, step_record_id
from flightlog.ledger.log import Ledger
from flightlog.ledger.schema import record_filter
from flightlog.store.base import chunked

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
    """Redact every sensitive value recorded for ``run`` (an id or unique prefix)."""
    store = ledger.store
    run_id = store.resolve_run_id(run)
    sqlite = store.dialect == "sqlite"
    with store.transaction() as tx:
        if sqlite:
            tx.execute("PRAGMA secure_delete = ON")
        step_rows = tx.fetchall(
            "SELECT id, input_hash, output_hash, attributes FROM steps WHERE run_id = ?", (run_id,)
        )
        run_row = tx.fetchone(
            "SELECT input_hash, output_hash, attributes FROM runs WHERE id = ?", (run_id,)
        )
        if run_row is None:
            raise NotFoundError(f"no run {run_id}")
        finding_rows = tx.fetchall("SELECT id, evidence FROM findings WHERE run_id = ?", (run_id,))
        edges = tx.fetchall(
            "SELECT run_id, source, target, kind FROM edges WHERE run_id = ?", (run_id,)
        )
        from flightlog.model import Edge

        ids = [run_id] + [step_record_id(run_id, r[0]) for r in step_rows]
        ids += [r[0] for r in finding_rows]
        ids += [edge_id(Edge(e[0], e[1], e[2], e[3])) for e in edges]
        seqs: list[int] = []
        for part in chunked(ids, 500):
            cond, params = record_filter(list(part), [run_id])
            seqs += [
                int(r[0])
                for r in tx.fetchall(f"SELECT seq FROM ledger_entries WHERE {cond}", params)
            ]
        seqs.sort()
        hashes: set[str] = set()
        values = 0
        for part in chunked(seqs, 500):
            marks = ", ".join("?" * len(part))
            for (data,) in tx.fetchall(
                f"SELECT openings FROM ledger_entries WHERE seq IN ({marks}) "
                "AND openings IS NOT NULL",
                list(part),
            ):
                for path, _salt, value in orjson.loads(data):
                    values += 1
                    if path[-1] in _HASH_FIELDS and isinstance(value, str):
                        hashes.add(value)
            tx.execute(
                f"UPDATE ledger_entries SET openings = NULL WHERE seq IN ({marks})", list(part)
            )
        # The stored records: clear committed fields.
        enc = ledger.encoder
        for f in ("input_hash", "output_hash"):
            for h in [run_row[0 if f == "input_hash" else 1]] + [
                r[1 if f == "input_hash" else 2] for r in step_rows
            ]:
                if h:
                    hashes.add(h)
        fields = [f for f in enc.config.committed_fields if f in _HASH_FIELDS]
        if fields:
            sets = ", ".join(f"{f} = NULL" for f in fields)
            tx.execute(f"UPDATE runs SET {sets} WHERE id = ?", (run_id,))
            tx.execute(f"UPDATE steps SET {sets} WHERE run_id = ?", (run_id,))
        new_attrs = _scrub_map(enc, _json.loads(run_row[2]) or {}, "attributes")
        if new_attrs is not None:
            tx.execute(
                "UPDATE runs SET attributes = ? WHERE id = ?", (_json.dumps(new_attrs), run_id)
            )
        for sid, _i, _o, attrs in step_rows:
            new_attrs = _scrub_map(enc, _json.loads(attrs) or {}, "attributes")
            if new_attrs is not None:
                tx.execute(
                    "UPDATE steps SET attributes = ? WHERE run_id = ? AND id = ?",
                    (_json.dumps(new_attrs), run_id, sid),
                )
        for fid, evidence in finding_rows:
            new_ev = _scrub_map(enc, _json.loads(evidence) or {}, "evidence")
            if new_ev is not None:
                tx.execute(
                    "UPDATE findings SET evidence = ? WHERE id = ?", (_json.dumps(new_ev), fid)
                )
        deleted = kept = 0
        for h in sorted(hashes):
            other = tx.fetchone(
                "SELECT 1 FROM steps WHERE (input_hash = ? OR output_hash = ?) AND run_id <> ? "
                "UNION ALL "
                "SELECT 1 FROM runs WHERE (input_hash = ? OR output_hash = ?) AND id <> ?",
                (h, h, run_id, h, h, run_id),
            )
            if other:
                kept += 1
                continue
            tx.execute("DELETE FROM payloads WHERE hash = ?", (h,))
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
    if sqlite:
        scrub_sqlite(str(store.path))  # type: ignore[attr-defined]
    return Redaction(run_id, len(seqs), values, deleted, kept, index)


def _scrub_map(enc: Any, mapping: dict[str, Any], container: str) -> dict[str, Any] | None:
    paths = [p for p in enc.sensitive_paths({container: mapping}) if p[0] == container]
    if not paths:
        return None
    out = dict(mapping)
    for _c, key in paths:
        out[key] = REDACTED
    return out


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
