"""The store-backed Merkle log: appends inside the store's write transaction, proofs in
O(log n) reads, checkpoints.

``Ledger`` attaches to a store (``attach``): a write hook turns every stored run (start and
end), step, edge and finding into a leaf in the *same* transaction as the record, and an
auditor does the same for records other capabilities pass to ``Store.audit``. No record
without a leaf, no leaf without a record: both commit or neither does, and the store's
commit is durable (SQLite ``synchronous=FULL``) before ``write`` returns.

Re-delivery: a batch delivered twice appends its records twice (one leaf per write, an
honest log of what arrived). Verification compares each stored record with its *latest*
leaf, which is what the store's upserts keep, so re-delivery never breaks verification.

Appending keeps the right frontier of the tree in memory (the complete subtrees on its right
edge), so a leaf costs one SHA-256 for itself plus, on average, one for the interior nodes it
completes; every complete subtree's hash is stored (``ledger_nodes``). Before each append the
cached tree head is compared with ``ledger_state`` (one read per batch), so several processes
writing one store stay consistent, and a rolled-back transaction is noticed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from flightlog.errors import LedgerError
from flightlog.ledger import anchor, rfc9162
from flightlog.ledger import checkpoint as cp_mod
from flightlog.ledger.config import LedgerConfig
from flightlog.ledger.entry import (
    Encoded,
    Encoder,
    edge_data,
    edge_id,
    finding_data,
    run_data,
    step_data,
    step_record_id,
)
from flightlog.ledger.note import Signer, Verifier
from flightlog.ledger.schema import MIN_STORED_LEVEL, NODE_SHIFT, migrations
from flightlog.model import Batch, Edge, Finding
from flightlog.store.base import Store, Tx, chunked

log = logging.getLogger("flightlog.ledger")

_sha256 = hashlib.sha256
_INSERT_ENTRY = (
    "INSERT INTO ledger_entries "
    "(seq, kind, record_id, rid_key, run_id, created_ns, entry, leaf, openings) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_NODE = "INSERT INTO ledger_nodes (id, hash) VALUES (?, ?)"


def node_id(level: int, index: int) -> int:
    return level << NODE_SHIFT | index


def fetch_nodes(tx: Tx, keys: Iterable[rfc9162.NodeKey]) -> dict[rfc9162.NodeKey, bytes]:
    """Read complete-subtree hashes: leaves from ``ledger_entries``, others from
    ``ledger_nodes``. Raises ``LedgerError`` naming a missing one."""
    keys = set(keys)
    out: dict[rfc9162.NodeKey, bytes] = {}
    low = {(lvl, i) for lvl, i in keys if 0 < lvl < MIN_STORED_LEVEL}
    leaf_set = {i for lvl, i in keys if lvl == 0}
    for lvl, i in low:  # subtrees of at most 2**(MIN_STORED_LEVEL-1) leaves: hash them
        leaf_set.update(range(i << lvl, (i + 1) << lvl))
    leaves = sorted(leaf_set)
    inner = sorted(node_id(lvl, i) for lvl, i in keys if lvl >= MIN_STORED_LEVEL)
    for part in chunked(leaves, 500):
        marks = ", ".join("?" * len(part))
        for seq, leaf in tx.fetchall(
            f"SELECT seq, leaf FROM ledger_entries WHERE seq IN ({marks})", list(part)
        ):
            out[(0, int(seq))] = bytes(leaf)
    mask = (1 << NODE_SHIFT) - 1
    for part in chunked(inner, 500):
        marks = ", ".join("?" * len(part))
        for nid, h in tx.fetchall(
            f"SELECT id, hash FROM ledger_nodes WHERE id IN ({marks})", list(part)
        ):
            out[(int(nid) >> NODE_SHIFT, int(nid) & mask)] = bytes(h)
    for lvl, i in sorted(low):
        span = [out.get((0, j)) for j in range((i << lvl), (i + 1) << lvl)]
        if all(h is not None for h in span):
            out[(lvl, i)] = rfc9162.root_from_leaves(span)  # type: ignore[arg-type]
    out = {k: v for k, v in out.items() if k in keys}
    missing = keys - out.keys()
    if missing:
        lvl, i = min(missing)
        raise LedgerError(
            f"the ledger has no hash for leaves {i << lvl}..{((i + 1) << lvl) - 1} "
            f"(level {lvl}); the log's tables were altered or truncated: "
            "run 'flightlog audit verify'"
        )
    return out


def load_signer(path: Path, name: str, *, create: bool) -> Signer:
    """The signing key at ``path``; created (mode 0600) if absent and ``create``."""
    if path.exists():
        signer = Signer.parse(path.read_text())
        if signer.name != name:
            raise LedgerError(
                f"signing key {path} is for log {signer.name!r}, but this store's log is "
                f"{name!r}; point FLIGHTLOG_LEDGER_KEY at this log's key"
            )
        return signer
    if not create:
        raise LedgerError(f"no ledger signing key at {path}; set FLIGHTLOG_LEDGER_KEY")
    if not path.parent.exists():
        raise LedgerError(f"cannot create ledger key {path}: directory {path.parent} is missing")
    signer = Signer.generate(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (signer.encode() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return signer


class Ledger:
    """The audit log of one store."""

    def __init__(self, store: Store, config: LedgerConfig | None = None) -> None:
        self.store = store
        self.config = config or LedgerConfig.from_env(getattr(store, "url", None))
        self.encoder = Encoder(self.config)
        self._lock = threading.Lock()
        self._head: tuple[int, bytes] | None = None
        self._frontier: list[bytes | None] = []
        self._last_cp: tuple[int, int] = (0, time.time_ns())  # (size, created_ns)
        self._signer: Signer | None = None
        self.checkpoint_errors = 0
        store.migrate("ledger", migrations(store.dialect))
        readonly = bool(getattr(store, "readonly", False))  # read commands: never write
        with store.read() if readonly else store.transaction() as tx:
            row = tx.fetchone("SELECT origin FROM ledger_state WHERE id = 1")
            if row is None and readonly:
                raise LedgerError(
                    f"{getattr(store, 'display_url', 'this store')} has no audit ledger "
                    "(it was recorded with the ledger off)"
                )
            if row is None:
                origin = self._initial_origin()
                tx.execute(
                    "INSERT INTO ledger_state (id, origin, size, root, created_ns) "
                    "VALUES (1, ?, 0, ?, ?)",
                    (origin, rfc9162.EMPTY_ROOT, time.time_ns()),
                )
            else:
                origin = str(row[0])
            last = tx.fetchone(
                "SELECT size, created_ns FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"
            )
            if last:
                self._last_cp = (int(last[0]), int(last[1]))
        self.origin = origin

    def _initial_origin(self) -> str:
        path = self.config.key_path
        if path is not None and path.exists():
            parts = path.read_text().strip().split("+", 4)
            if len(parts) == 5 and parts[:2] == ["PRIVATE", "KEY"]:
                return parts[2]
        return f"flightlog.local/{secrets.token_hex(6)}"

    # -- keys ----------------------------------------------------------------------------
    def signer(self, *, create: bool = True) -> Signer:
        if self._signer is None:
            if self.config.key_path is None:
                raise LedgerError("no ledger key path configured; set FLIGHTLOG_LEDGER_KEY")
            self._signer = load_signer(self.config.key_path, self.origin, create=create)
        return self._signer

    def verifier(self) -> Verifier:
        return self.signer().verifier

    # -- the write path --------------------------------------------------------------------
    def on_write(self, tx: Tx, batch: Batch) -> None:
        """Store write hook: append a leaf for every record of ``batch`` (same transaction)."""
        now = time.time_ns()
        enc = self.encoder.encode
        out: list[Encoded] = []
        if batch.runs:
            stored = self._stored_runs(tx, {r.id for r in batch.runs})
            for r in batch.runs:
                kind = "run.start" if r.status == "running" else "run.end"
                out.append(enc(kind, r.id, r.id, run_data(stored[r.id]), now))
        for s in batch.steps:
            # Step upserts overwrite every column, so the batch record is what is stored.
            out.append(enc("step", step_record_id(s.run_id, s.id), s.run_id, step_data(s), now))
        for e in batch.edges:
            se = self._stored_edge(tx, e)
            out.append(enc("edge", edge_id(se), se.run_id, edge_data(se), now))
        for f in batch.findings:
            sf = self._stored_finding(tx, f)
            out.append(enc("finding", sf.id, sf.run_id, finding_data(sf), now))
        self.append(tx, out)

    def on_audit(self, tx: Tx, kind: str, data: dict[str, Any]) -> None:
        """Store auditor: append a leaf for a capability's record (same transaction)."""
        if not kind or not isinstance(kind, str):
            raise LedgerError(f"audit kind must be a non-empty string, got {kind!r}")
        record_id = str(data.get("id") or data.get("run_id") or kind)
        run_id = data.get("run_id")
        e = self.encoder.encode(
            kind,
            record_id,
            str(run_id) if run_id else None,
            dict(data),
            time.time_ns(),
            top_level_keys=True,
        )
        self.append(tx, [e])

    def _stored_runs(self, tx: Tx, ids: set[str]) -> dict[str, Any]:
        from flightlog.store._sql import RUN_COLUMNS, run_from_row

        out = {}
        for part in chunked(sorted(ids), 500):
            marks = ", ".join("?" * len(part))
            for row in tx.fetchall(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE id IN ({marks})", list(part)
            ):
                out[row[0]] = run_from_row(row)
        return out

    def _stored_edge(self, tx: Tx, e: Edge) -> Edge:
        row = tx.fetchone(
            "SELECT run_id, source, target, kind, evidence, detail FROM edges "
            "WHERE run_id = ? AND source = ? AND target = ? AND kind = ?",
            (e.run_id, e.source, e.target, e.kind),
        )
        return Edge(*row) if row else e

    def _stored_finding(self, tx: Tx, f: Finding) -> Finding:
        from flightlog.store._sql import FINDING_COLUMNS, finding_from_row

        row = tx.fetchone(f"SELECT {FINDING_COLUMNS} FROM findings WHERE id = ?", (f.id,))
        return finding_from_row(row) if row else f

    def _sync(self, tx: Tx) -> tuple[int, bytes]:
        row = tx.fetchone("SELECT size, root FROM ledger_state WHERE id = 1")
        if row is None:
            raise LedgerError("the ledger_state row is missing; the ledger tables were altered")
        head = (int(row[0]), bytes(row[1]))
        if head != self._head:
            size = head[0]
            nodes = fetch_nodes(tx, rfc9162.frontier_keys(size))
            frontier: list[bytes | None] = [None] * size.bit_length()
            for level, idx in rfc9162.frontier_keys(size):
                frontier[level] = nodes[(level, idx)]
            if rfc9162.frontier_root(frontier) != head[1]:
                log.error("ledger_state root does not match the stored tree of size %d", size)
            self._frontier = frontier
            self._head = head
        return head

    def append(self, tx: Tx, encoded: Sequence[Encoded]) -> int:
        """Append entries inside ``tx``; returns the index of the first. Thread-safe."""
        if not encoded:
            return -1
        with self._lock:
            size, root = self._sync(tx)
            self._maybe_checkpoint(tx, size, root)
            frontier = list(self._frontier)
            entries = []
            nodes = []
            seq = size
            for e in encoded:
                h = _sha256(b"\x00" + e.entry).digest()
                rid = e.record_id
                entries.append(
                    (
                        seq,
                        e.kind,
                        rid,
                        None,
                        e.run_id,
                        e.time_ns,
                        e.entry,
                        h,
                        e.openings,
                    )
                )
                level, idx = 0, seq
                while idx & 1:
                    left = frontier[level]
                    assert left is not None
                    h = _sha256(b"\x01" + left + h).digest()
                    frontier[level] = None
                    level += 1
                    idx >>= 1
                    if level >= MIN_STORED_LEVEL:
                        nodes.append((level << NODE_SHIFT | idx, h))
                if level == len(frontier):
                    frontier.append(h)
                else:
                    frontier[level] = h
                seq += 1
            tx.executemany(_INSERT_ENTRY, entries)
            if nodes:
                tx.executemany(_INSERT_NODE, nodes)
            new_root = rfc9162.frontier_root(frontier)
            tx.execute("UPDATE ledger_state SET size = ?, root = ? WHERE id = 1", (seq, new_root))
            # Cached now; if the transaction rolls back, _sync sees the difference next time.
            self._head = (seq, new_root)
            self._frontier = frontier
            return size

    # -- reading -------------------------------------------------------------------------
    def head(self, tx: Tx | None = None) -> tuple[int, bytes]:
        """(size, root) of the log as stored."""
        if tx is None:
            with self.store.read() as rtx:
                return self.head(rtx)
        row = tx.fetchone("SELECT size, root FROM ledger_state WHERE id = 1")
        if row is None:
            raise LedgerError("the ledger_state row is missing; the ledger tables were altered")
        return int(row[0]), bytes(row[1])

    def root_at(self, tx: Tx, size: int) -> bytes:
        if size == 0:
            return rfc9162.EMPTY_ROOT
        keys = rfc9162.range_nodes(0, size)
        return rfc9162.range_root(0, size, fetch_nodes(tx, keys))

    def inclusion_proof(self, tx: Tx, index: int, size: int) -> list[bytes]:
        return rfc9162.inclusion_proof(index, size, lambda keys: fetch_nodes(tx, keys))

    def consistency_proof(self, tx: Tx, size1: int, size2: int) -> list[bytes]:
        return rfc9162.consistency_proof(size1, size2, lambda keys: fetch_nodes(tx, keys))

    def entry(self, tx: Tx, seq: int) -> tuple[str, str, bytes | None, bytes] | None:
        row = tx.fetchone(
            "SELECT kind, record_id, entry, leaf FROM ledger_entries WHERE seq = ?", (seq,)
        )
        if row is None:
            return None
        return str(row[0]), str(row[1]), None if row[2] is None else bytes(row[2]), bytes(row[3])

    def checkpoint_notes(self, tx: Tx) -> list[tuple[int, int, str]]:
        """Stored checkpoints: (size, created_ns, signed note), by size."""
        return [
            (int(s), int(c), str(n))
            for s, c, n in tx.fetchall(
                "SELECT size, created_ns, note FROM ledger_checkpoints ORDER BY size"
            )
        ]

    def latest_checkpoint(self, tx: Tx) -> cp_mod.Checkpoint | None:
        row = tx.fetchone("SELECT note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1")
        if row is None:
            return None
        return cp_mod.open_checkpoint(str(row[0]), self.verifier())

    # -- checkpoints -----------------------------------------------------------------------
    def _maybe_checkpoint(self, tx: Tx, size: int, root: bytes) -> None:
        """Periodic checkpoints sign the tree as it was *before* this append: that state is
        already durable, so a witness never publishes a size the database could lose."""
        last_size, last_ns = self._last_cp
        if size <= last_size:
            return
        due = size - last_size >= self.config.checkpoint_every or (
            self.config.checkpoint_seconds > 0
            and time.time_ns() - last_ns >= self.config.checkpoint_seconds * 1e9
        )
        if not due:
            return
        try:
            self._sign(tx, size, root)
        except Exception as exc:  # never fail the records' write over a checkpoint
            self.checkpoint_errors += 1
            self._last_cp = (last_size, time.time_ns())  # back off until the next period
            log.error("ledger checkpoint at size %d not signed: %s", size, exc)

    def checkpoint(self, *, git_repo: Path | None = None) -> cp_mod.Checkpoint:
        """Sign a checkpoint of the log as it is now (or return the latest, if it already
        covers every entry). Raises ``LedgerError`` if the log is empty or inconsistent with
        the previous checkpoint."""
        with self._lock, self.store.transaction() as tx:
            size, root = self._sync(tx)
            if size == 0:
                raise LedgerError("the ledger is empty; record something before checkpointing")
            cp = self._sign(tx, size, root)
        if git_repo is not None:
            anchor.anchor_git(git_repo, cp.note, cp.origin, cp.size)
        return cp

    def _sign(self, tx: Tx, size: int, root: bytes) -> cp_mod.Checkpoint:
        signer = self.signer()
        verifier = signer.verifier
        row = tx.fetchone("SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1")
        if row is not None:
            prev = cp_mod.open_checkpoint(str(row[1]), verifier)
            if prev.size == size:
                if prev.root != root:
                    raise LedgerError(
                        f"refusing to sign: the log's root at size {size} differs from the "
                        "root already signed for that size; run 'flightlog audit verify'"
                    )
                return prev
            if prev.size > size:
                raise LedgerError(
                    f"refusing to sign: the log has {size} entries but a checkpoint for "
                    f"{prev.size} was already signed (truncated or rolled back log)"
                )
            try:
                proof = self.consistency_proof(tx, prev.size, size)
                rfc9162.verify_consistency(prev.size, size, prev.root, root, proof)
            except LedgerError as exc:
                raise LedgerError(
                    f"refusing to sign a checkpoint at size {size}: it is not consistent with "
                    f"the checkpoint at size {prev.size} ({exc})"
                ) from exc
        cp = cp_mod.sign(signer, size, root)
        now = time.time_ns()
        tx.execute(
            "INSERT INTO ledger_checkpoints (size, created_ns, note) VALUES (?, ?, ?) "
            "ON CONFLICT (size) DO NOTHING",
            (size, now, cp.note),
        )
        if self.config.witness_path is not None:
            anchor.append_witness(self.config.witness_path, cp.note)
        self._last_cp = (size, now)
        return cp

    def prove(self, tx: Tx, seq: int, checkpoint: cp_mod.Checkpoint) -> list[bytes]:
        if seq >= checkpoint.size:
            raise LedgerError(
                f"entry {seq} is not covered by the checkpoint of size {checkpoint.size}"
            )
        return self.inclusion_proof(tx, seq, checkpoint.size)
