"""Proofs for one record: finding its entry and writing a C2SP tlog-proof
(c2sp.org/tlog-proof)::

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry's canonical JSON>
    index <leaf index>
    <base64 inclusion proof hashes, leaf's sibling first>

    <signed checkpoint>

The ``extra`` line carries the entry itself, so the proof verifies with nothing else but the
verifier key (``verify_tlog_proof``). As the spec says, extra data is not authenticated by
itself: it is trusted only because its leaf hash is proven included.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from flightlog.errors import LedgerError, NotFoundError
from flightlog.ledger import checkpoint as cp_mod
from flightlog.ledger import rfc9162
from flightlog.ledger.log import Ledger
from flightlog.ledger.note import Verifier
from flightlog.ledger.schema import record_filter
from flightlog.store.base import Tx

HEADER = "c2sp.org/tlog-proof@v1"


class PendingEntryError(LedgerError):
    """The record is acknowledged (stored durably, its entry written) but the entry is not
    integrated into the tree yet, so no proof exists yet: retry in a few seconds."""

    def __init__(self, record: str, pending_id: int) -> None:
        self.record = record
        self.pending_id = pending_id
        super().__init__(
            f"{record!r} is acknowledged but not provable yet: its latest ledger entry "
            f"(pending {pending_id}) is waiting to be integrated into the log; retry in a few "
            "seconds (the integrator adds pending entries continuously)"
        )


def find_entry(ledger: Ledger, tx: Tx, record: str) -> int:
    """The leaf index for ``record``: ``#N``/``N`` (a leaf index), a run id or unique
    prefix, a step id, a finding id, or a ledger record id. The latest entry wins; if that
    one is still pending, ``PendingEntryError``."""
    record = record.strip()
    if record.startswith("#") and record[1:].isdigit():
        return int(record[1:])
    if record.isdigit() and len(record) < 16:
        return int(record)
    candidates = [record]
    run_ids: list[str] = []
    rows = tx.fetchall("SELECT run_id FROM steps WHERE id = ?", (record,))
    candidates += [f"{r[0]}/{record}" for r in rows]
    run_ids += [str(r[0]) for r in rows]
    if "/" in record:  # a ledger record id of a step or edge: RUN/...
        run_ids.append(record.split("/", 1)[0])
    finding = tx.fetchone("SELECT run_id FROM findings WHERE id = ?", (record,))
    if finding:
        run_ids.append(str(finding[0]))
    lowered = record.lower()
    if 0 < len(lowered) <= 32 and all(c in "0123456789abcdef" for c in lowered):
        runs = tx.fetchall(
            "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
            (lowered, lowered + "g"),
        )
        if len(runs) == 1:
            candidates.append(str(runs[0][0]))
            run_ids.append(str(runs[0][0]))
    if ledger.pending_mode:  # a pending entry is newer than any integrated one
        cond, params = record_filter(candidates, None)
        got = tx.fetchone(f"SELECT MAX(id) FROM ledger_pending WHERE {cond}", params)
        if got is not None and got[0] is not None:
            raise PendingEntryError(record, int(got[0]))
    row = None
    if run_ids:  # through the run index
        cond, params = record_filter(candidates, run_ids)
        row = tx.fetchone(f"SELECT MAX(seq) FROM ledger_entries WHERE {cond}", params)
    if row is None or row[0] is None:  # e.g. an incident transition's id: a scan
        cond, params = record_filter(candidates, None)
        row = tx.fetchone(f"SELECT MAX(seq) FROM ledger_entries WHERE {cond}", params)
    if row is None or row[0] is None:
        raise NotFoundError(
            f"no ledger entry for {record!r}; give a leaf index (#N), a run id, a step id or "
            "a finding id"
        )
    return int(row[0])


@dataclass(frozen=True, slots=True)
class RecordProof:
    index: int
    entry: bytes
    proof: list[bytes]
    checkpoint: cp_mod.Checkpoint

    def to_text(self) -> str:
        lines = [HEADER, f"extra {base64.b64encode(self.entry).decode()}", f"index {self.index}"]
        lines += [base64.b64encode(h).decode() for h in self.proof]
        return "\n".join(lines) + "\n\n" + self.checkpoint.note


def record_state(ledger: Ledger, record: str) -> dict[str, object]:
    """Whether ``record``'s latest entry is ``integrated`` (provable: ``index``) or
    ``pending`` (acknowledged, not provable yet). Raises ``NotFoundError`` if it has none."""
    with ledger.store.read() as tx:
        try:
            seq = find_entry(ledger, tx, record)
        except PendingEntryError as exc:
            return {"record": record, "state": "pending", "pending_id": exc.pending_id}
    return {"record": record, "state": "integrated", "index": seq}


def prove(ledger: Ledger, record: str) -> RecordProof:
    """An inclusion proof of ``record``'s latest entry in a signed checkpoint (a new one is
    signed if the latest does not cover the entry). With pending sequencing, what is pending
    is integrated first when the store is writable; an entry still pending raises
    ``PendingEntryError`` (acknowledged, not provable yet)."""
    if ledger.pending_mode and not getattr(ledger.store, "readonly", False):
        ledger.integrate_pending()
    with ledger.store.read() as tx:
        seq = find_entry(ledger, tx, record)
        latest = ledger.latest_checkpoint(tx)
    if latest is None or latest.size <= seq:
        latest = ledger.checkpoint()
    with ledger.store.read() as tx:
        got = ledger.entry(tx, seq)
        if got is None:
            raise NotFoundError(f"the log has no entry #{seq}")
        _kind, _rid, entry, _leaf = got
        if entry is None:
            raise LedgerError(f"entry #{seq} was pruned; only its leaf hash remains")
        proof = ledger.prove(tx, seq, latest)
    return RecordProof(seq, entry, proof, latest)


def parse_tlog_proof(text: str) -> tuple[int, list[bytes], str, bytes | None]:
    """(index, proof hashes, signed checkpoint note, extra) of a tlog-proof."""
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise LedgerError("tlog-proof has no blank line before its checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise LedgerError(f"not a tlog-proof: first line is {lines[0][:40]!r}, expected {HEADER}")
    rest = lines[1:]
    extra = None
    try:
        if rest and rest[0].startswith("extra "):
            extra = base64.b64decode(rest.pop(0)[6:], validate=True)
        if not rest or not rest[0].startswith("index "):
            raise LedgerError("tlog-proof has no 'index N' line")
        idx_text = rest.pop(0)[6:]
        if not idx_text.isdigit() or (idx_text != "0" and idx_text.startswith("0")):
            raise LedgerError(f"tlog-proof index {idx_text!r} is not a decimal")
        hashes = [base64.b64decode(h, validate=True) for h in rest]
    except binascii.Error as exc:
        raise LedgerError(f"tlog-proof has bad base64: {exc}") from exc
    return int(idx_text), hashes, note, extra


def verify_tlog_proof(text: str, verifier: Verifier, entry: bytes | None = None) -> RecordProof:
    """Verify a tlog-proof against ``verifier``; ``entry`` defaults to the extra data."""
    index, hashes, note, extra = parse_tlog_proof(text)
    cp = cp_mod.open_checkpoint(note, verifier)
    entry = entry if entry is not None else extra
    if entry is None:
        raise LedgerError("tlog-proof carries no entry (extra line) and none was given")
    rfc9162.verify_inclusion(index, cp.size, rfc9162.leaf_hash(entry), hashes, cp.root)
    return RecordProof(index, entry, hashes, cp)


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """RFC 9162 §2.1.4 proof that checkpoint ``old`` is a prefix of checkpoint ``new``."""

    old: cp_mod.Checkpoint
    new: cp_mod.Checkpoint
    proof: list[bytes]

    def to_dict(self) -> dict[str, object]:
        return {
            "old": self.old.note,
            "new": self.new.note,
            "proof": [base64.b64encode(h).decode() for h in self.proof],
        }


def prove_consistency(
    ledger: Ledger, old_size: int, new_size: int | None = None
) -> ConsistencyProof:
    """A consistency proof between two stored checkpoints (``new_size`` defaults to a fresh
    checkpoint of the whole log)."""
    verifier = ledger.verifier()
    new = ledger.checkpoint() if new_size is None else None
    with ledger.store.read() as tx:
        notes = {size: note for size, _c, note in ledger.checkpoint_notes(tx)}
        if old_size not in notes:
            raise NotFoundError(
                f"no checkpoint of size {old_size}; sizes with checkpoints: "
                f"{', '.join(map(str, sorted(notes))) or 'none'}"
            )
        old = cp_mod.open_checkpoint(notes[old_size], verifier)
        if new is None:
            assert new_size is not None
            if new_size not in notes:
                raise NotFoundError(f"no checkpoint of size {new_size}")
            new = cp_mod.open_checkpoint(notes[new_size], verifier)
        proof = ledger.consistency_proof(tx, old.size, new.size)
    return ConsistencyProof(old, new, proof)


def verify_consistency_proof(data: dict[str, object], verifier: Verifier) -> ConsistencyProof:
    """Verify a ``ConsistencyProof.to_dict()`` with only the verifier key: both checkpoints'
    signatures and the RFC 9162 consistency proof between them."""
    try:
        old = cp_mod.open_checkpoint(str(data["old"]), verifier)
        new = cp_mod.open_checkpoint(str(data["new"]), verifier)
        hashes = [base64.b64decode(str(h), validate=True) for h in data["proof"]]  # type: ignore[attr-defined]
    except (KeyError, TypeError, binascii.Error) as exc:
        raise LedgerError(f"malformed consistency proof: {exc}") from exc
    rfc9162.verify_consistency(old.size, new.size, old.root, new.root, hashes)
    return ConsistencyProof(old, new, hashes)
