"""The store-backed Merkle log: sequencing, proofs in O(log n) reads, checkpoints.

``Ledger`` attaches to a store (``attach``): a write hook turns every stored run (start and
end), step, edge and finding into a log entry in the *same* transaction as the record, and
an auditor does the same for records other capabilities pass to ``Store.audit``. No record
without an entry, no entry without a record: both commit or neither does, and the store's
commit is durable (SQLite ``synchronous=FULL``) before ``write`` returns.

Sequencing (assigning leaf indices and extending the tree) happens in one of two ways; both
call the same code (``_extend``), so the same entries in the same order give the same
leaves, tree, roots and proofs on either store:

- **Inline** (SQLite, one writer at a time): the entries are appended as leaves inside the
  write transaction itself. Acknowledged and provable at once.
- **Pending + integrator** (stores with ``concurrent_writers``, PostgreSQL): writers only
  insert each entry (its canonical bytes, leaf hash and openings: everything computable
  without the tree) into ``ledger_pending``, in the record's transaction and without any
  lock, so a record is *acknowledged* (durable) when ``write`` returns. One integrator at a
  time (the leader, ``flightlog.store.leader``; another process takes over if it dies)
  takes the committed pending rows in id order, assigns their indices, extends the tree,
  deletes the rows and signs periodic checkpoints, in one transaction per batch; a record
  is *provable* once integrated. Pending ids come from a sequence and commit out of order:
  the integrator takes whatever is committed and never treats a gap as final. Commands that
  need a proof (``prove``, ``export``, ``checkpoint``, ``verify``) integrate what is pending
  themselves. Every integration locks the tree head row (``SELECT ... FOR UPDATE``), so two
  integrations never interleave even if two processes think they lead.

A run's ``run.index`` entry lists the indices of the run's entries, so it is built when
the log is extended (``IndexMark``), not when the run's end is written.

Re-delivery: a batch delivered twice appends its records twice (one leaf per write, an
honest log of what arrived). Verification compares each stored record with its *latest*
entry, which is what the store's upserts keep, so re-delivery never breaks verification.

Extending keeps the right frontier of the tree in memory (the complete subtrees on its
right edge), so a leaf costs one SHA-256 for itself plus, on average, one for the interior
nodes it completes; every complete subtree's hash is stored (``ledger_nodes``). Before each
extension the cached tree head is compared with ``ledger_state`` (one read per batch), so
several processes writing one store stay consistent, and a rolled-back transaction is
noticed.

Size: one module on purpose, over 500 lines: the write hook, sequencing, the tree's right
frontier and checkpoint signing share one in-memory frontier and one lock; split, that state
would be reached into from several modules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import operator
import os
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from itertools import chain
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
)
from flightlog.ledger.note import Signer, Verifier
from flightlog.ledger.schema import MIN_STORED_LEVEL, NODE_SHIFT, migrations
from flightlog.model import Batch, Edge, Step
from flightlog.store import core
from flightlog.store.base import Store, Tx, chunked

log = logging.getLogger("flightlog.ledger")

_sha256 = hashlib.sha256
# SHA-256 states after RFC 9162's leaf and node prefixes, copied for each hash (cheaper than
# hashing the prefix joined to the data: no copy of the entry, no fresh state).
_LEAF_STATE = _sha256(b"\x00")
_NODE_STATE = _sha256(b"\x01")

# The columns in the order of ``Encoded``'s first fields, then the index and the leaf hash:
# a batch's rows are flattened without Python per row (``_extend``).
_ENTRY_COLUMNS = "(kind, record_id, run_id, created_ns, entry, openings, seq, leaf)"
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
_NCOL = 8
_INSERT_ENTRY = f"INSERT INTO ledger_entries {_ENTRY_COLUMNS} VALUES {_ROW}"
# Entries go in statements of ENTRY_ROWS rows each (one multi-row VALUES: on SQLite about a
# fifth cheaper per row than executemany of one-row statements); the rest one by one.
ENTRY_ROWS = 200
_INSERT_ENTRIES = f"INSERT INTO ledger_entries {_ENTRY_COLUMNS} VALUES " + ", ".join(
    [_ROW] * ENTRY_ROWS
)
_entry_fields = operator.attrgetter("kind", "record_id", "run_id", "time_ns", "entry", "openings")


def _insert_rows(tx: Tx, values: list[Any], ncol: int, one: str, many: str, rows: int) -> None:
    """Insert rows given flat, ``ncol`` values per row: ``rows`` rows per ``many``
    statement, the rest by ``one``."""
    step = rows * ncol
    full = len(values) - len(values) % step
    for at in range(0, full, step):
        tx.execute(many, values[at : at + step])
    if full < len(values):
        rest = values[full:]
        tx.executemany(one, [rest[at : at + ncol] for at in range(0, len(rest), ncol)])


def _insert_entries(tx: Tx, values: list[Any]) -> None:
    """Insert entry rows given flat, ``_NCOL`` values per row (``_ENTRY_COLUMNS``)."""
    _insert_rows(tx, values, _NCOL, _INSERT_ENTRY, _INSERT_ENTRIES, ENTRY_ROWS)


_INSERT_NODE = "INSERT INTO ledger_nodes (id, hash) VALUES (?, ?)"
NODE_ROWS = 50  # interior hashes per multi-row statement (a 1,000-entry batch stores ~125)
_INSERT_NODES = "INSERT INTO ledger_nodes (id, hash) VALUES " + ", ".join(["(?, ?)"] * NODE_ROWS)
_INSERT_PENDING = (
    "INSERT INTO ledger_pending (kind, record_id, run_id, created_ns, entry, leaf, openings) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_PENDING = "SELECT id, run_id, created_ns, leaf FROM ledger_pending ORDER BY id LIMIT ?"
# Integration moves the pending rows' bytes inside the database: the integrator reads only
# ids, runs and leaf hashes. (PostgreSQL arrays: pending sequencing is for stores that take
# concurrent writers.)
_MOVE_PENDING = (
    "INSERT INTO ledger_entries "
    "(seq, kind, record_id, rid_key, run_id, created_ns, entry, leaf, openings) "
    "SELECT m.seq, p.kind, p.record_id, NULL, p.run_id, p.created_ns, p.entry, p.leaf, "
    "p.openings FROM ledger_pending p "
    "JOIN unnest(?::bigint[], ?::bigint[]) AS m(id, seq) ON p.id = m.id"
)
_DELETE_PENDING = "DELETE FROM ledger_pending WHERE id = ANY(?::bigint[])"
RUN_INDEX = "run.index"  # entry kind: the list of a run's entries (completeness of bundles)
INTEGRATE_BATCH = 5000  # pending entries integrated per transaction
POLL_S = 0.1  # how often an idle integrator looks for pending entries
TAKEOVER_S = 1.0  # how often a process that does not lead tries to take the role
INTEGRATOR_ROLE = "ledger-integrator"  # the leader role (flightlog.store.leader)
RELEASE_AFTER_FAILURES = 5  # consecutive failed integrations before the role is given up


@dataclass(frozen=True, slots=True)
class Pending:
    """An entry waiting in ``ledger_pending``: sequencing needs only its id, run and leaf
    hash (its bytes are moved from table to table by the database)."""

    id: int
    run_id: str | None
    leaf: bytes


@dataclass(frozen=True, slots=True)
class IndexMark:
    """Where a run's ``run.index`` entry goes in the log. The entry lists the indices of the
    run's entries, so it is built when the log is extended (``Ledger._extend``)."""

    run_id: str
    time_ns: int


def _nul_as_stored(step: Step) -> Step:
    """``step`` with a NUL in its text as PostgreSQL stores it (U+FFFD: ``store.postgres``);
    its JSON fields (attributes, error) are stored escaped, as they are."""
    changed: dict[str, Any] = {
        f.name: v.replace("\x00", "\ufffd")
        for f in dataclasses.fields(step)
        if type(v := getattr(step, f.name)) is str and "\x00" in v
    }
    return dataclasses.replace(step, **changed) if changed else step


def _edge_text(e: Edge) -> str:
    return f"{e.run_id}{e.source}{e.target}{e.kind}{e.evidence}{e.detail or ''}"


def _edge_as_stored(tx: Tx, e: Edge) -> Edge:
    """``e`` as its row reads back (``e`` itself if there is none)."""
    row = tx.fetchone(
        "SELECT run_id, source, target, kind, evidence, detail FROM edges "
        "WHERE run_id = ? AND source = ? AND target = ? AND kind = ?",
        (e.run_id, e.source, e.target, e.kind),
    )
    return e if row is None else Edge(*row)


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


_entry_of = operator.attrgetter("entry")


def _extend_tree(
    frontier: Sequence[bytes | None], size: int, leaves: Sequence[bytes]
) -> tuple[list[bytes | None], list[Any]]:
    """Append ``leaves`` to the tree of ``size`` leaves whose right frontier is ``frontier``
    (``frontier[level]``: the complete subtree of 2**level leaves waiting for its right
    sibling, None where that bit of ``size`` is 0). Level by level: the new complete nodes
    of a level are hashed in pairs from those of the level below (the first paired with the
    frontier's node when the level's first new node is a right child). Returns the new
    frontier and the stored interior hashes (levels from ``MIN_STORED_LEVEL``) as flat
    ``id, hash`` values."""
    end = size + len(leaves)
    out = list(frontier)
    out += [None] * (end.bit_length() - len(out))
    nodes: list[Any] = []
    node_state = _NODE_STATE
    cur: list[Any] = list(leaves)
    first = size  # index of cur[0] within its level
    level = 0
    while cur:
        if first & 1:  # a right child: its left sibling waits in the frontier
            cur.insert(0, out[level])
            first -= 1
        # the last one, if unpaired, is a left child waiting for its sibling
        out[level] = cur[-1] if len(cur) & 1 else None
        it = iter(cur)
        parents: list[bytes] = []
        add = parents.append
        for left, right in zip(it, it, strict=False):  # an unpaired last one: left out
            hasher = node_state.copy()
            hasher.update(left)
            hasher.update(right)
            add(hasher.digest())
        level += 1
        first >>= 1
        if parents and level >= MIN_STORED_LEVEL:
            base = level << NODE_SHIFT | first
            nodes += chain.from_iterable(
                zip(range(base, base + len(parents)), parents, strict=True)
            )
        cur = parents
    return out, nodes


class KeyMissingError(LedgerError):
    """The log's signing key file is not where it was expected (e.g. a copied store)."""


def load_signer(path: Path, name: str, *, create: bool) -> Signer:
    """The signing key at ``path``; created (mode 0600, its directory 0700 if it must be
    made) if absent and ``create``, else ``KeyMissingError`` saying where it was expected."""
    if path.exists():
        try:
            signer = Signer.parse(path.read_text())
        except (OSError, ValueError) as exc:
            raise LedgerError(f"cannot read the ledger signing key {path}: {exc}") from exc
        if signer.name != name:
            raise LedgerError(
                f"signing key {path} is for log {signer.name!r}, but this store's log is "
                f"{name!r}; point FLIGHTLOG_LEDGER_KEY at this log's key"
            )
        return signer
    if not create:
        raise KeyMissingError(
            f"key file missing: the signing key of log {name!r} was expected at {path}. "
            "A copied store does not bring its key: copy the key file there, or pass its "
            "path in FLIGHTLOG_LEDGER_KEY; to check signatures with only the public key, "
            "pass it with --key (from 'flightlog audit key' on the original machine)"
        )
    # Written whole to a private temporary file, then linked into place: a process that
    # reads the key meanwhile (several writers of one PostgreSQL store sign) never sees a
    # partial file, and of two processes creating it at once, the first link wins.
    signer = Signer.generate(name)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (signer.encode() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return load_signer(path, name, create=False)  # another process made it first
    except OSError as exc:
        raise LedgerError(
            f"cannot create the ledger signing key {path}: {exc}; set FLIGHTLOG_LEDGER_KEY "
            "to a writable path"
        ) from exc
    finally:
        with suppress(OSError):
            tmp.unlink()
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
        self._tail_timer: threading.Timer | None = None
        self._last_tx: Tx | None = None  # the transaction of the last append
        self._timer_pid = os.getpid()
        self.checkpoint_errors = 0
        self.integration_errors = 0  # failed integrations of this process's integrator
        self._pending_mode = bool(getattr(store, "concurrent_writers", False))
        self._integrator: Integrator | None = None
        self._integrator_lock = threading.Lock()
        self._head_sql = "SELECT size, root FROM ledger_state WHERE id = 1" + (
            " FOR UPDATE" if store.dialect == "postgresql" else ""
        )
        store.migrate("ledger", migrations(store.dialect))
        readonly = bool(getattr(store, "readonly", False))  # read commands: never write
        with store.read() if readonly else store.transaction() as tx:
            tx.lock("ledger")  # processes opening a new ledger at once create it once
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
    @property
    def key_path(self) -> Path | None:
        """The signing key file: ``FLIGHTLOG_LEDGER_KEY``, else one per log in the user's
        configuration directory (outside the store's directory)."""
        if self.config.key_path is not None:
            return self.config.key_path
        if self.config.key_dir is None:
            return None
        return self.config.key_dir / f"{anchor.safe_name(self.origin)}.key"

    def signer(self, *, create: bool = True) -> Signer:
        """The signing key; created only when ``create`` (signing paths), never by reads."""
        if self._signer is None:
            path = self.key_path
            if path is None:
                raise LedgerError(
                    "no place for the ledger signing key (no home directory); set "
                    "FLIGHTLOG_LEDGER_KEY"
                )
            self._signer = load_signer(path, self.origin, create=create)
        return self._signer

    def verifier(self, *, create: bool = False) -> Verifier:
        """The public key checking this log's checkpoints. Raises ``KeyMissingError`` when
        the key file does not exist (reads never create it)."""
        return self.signer(create=create).verifier

    # -- the write path --------------------------------------------------------------------
    @property
    def pending_mode(self) -> bool:
        """True when writers leave entries pending for the integrator (stores that take
        concurrent writers: PostgreSQL); False when they extend the log inline (SQLite)."""
        return self._pending_mode

    def on_write(self, tx: Tx, batch: Batch) -> None:
        """Store write hook: an entry for every record of ``batch`` (same transaction)."""
        now = time.time_ns()
        enc = self.encoder.encode_known
        out: list[Encoded | IndexMark] = []
        if batch.runs:
            stored = core.runs_by_id(tx, {r.id for r in batch.runs})
            for r in batch.runs:
                kind = "run.start" if r.status == "running" else "run.end"
                out.append(enc(kind, r.id, r.id, run_data(stored[r.id]), now))
        # Hooks receive the steps as stored (merged by store.facts).
        if batch.steps:
            steps = batch.steps
            if getattr(tx, "nul_replaced", False):  # PostgreSQL wrote a NUL as U+FFFD
                steps = [_nul_as_stored(s) for s in steps]
            out += self.encoder.encode_steps(steps, now)
        # Hooks receive only the edges this write inserted (``store._sql.write_batch``: a key
        # stored already is skipped, not updated), as inserted: they are the stored rows, and
        # are not read back; but for one whose text holds a NUL, which PostgreSQL stores as
        # U+FFFD (``store.postgres``): that one is logged as read back.
        out += [
            enc("edge", edge_id(e), e.run_id, edge_data(e), now)
            for e in (_edge_as_stored(tx, e) if "\x00" in _edge_text(e) else e for e in batch.edges)
        ]
        if batch.findings:
            findings = core.findings_by_id(tx, {f.id for f in batch.findings})
            for f in batch.findings:
                sf = findings.get(f.id, f)
                out.append(enc("finding", sf.id, sf.run_id, finding_data(sf), now))
        # Each run that ended in this write gets an index of its entries (after them), so a
        # bundle of the run can be checked for completeness (bundle.verify_bundle).
        out.extend(IndexMark(r.id, now) for r in batch.runs if r.status != "running")
        self.submit(tx, out)

    def on_audit(self, tx: Tx, kind: str, data: dict[str, Any]) -> None:
        """Store auditor: an entry for a capability's record (same transaction)."""
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
        self.submit(tx, [e])

    def submit(self, tx: Tx, items: Sequence[Encoded | IndexMark]) -> None:
        """Log ``items`` in the caller's transaction: appended as leaves at once (inline
        sequencing), or inserted as pending entries for the integrator."""
        if not items:
            return
        if not self._pending_mode:
            self.append(tx, items)
            return
        rows: list[tuple[Any, ...]] = []
        leaf_state = _LEAF_STATE
        for e in items:
            if isinstance(e, IndexMark):
                rows.append((RUN_INDEX, f"{e.run_id}#index", e.run_id, e.time_ns, None, None, None))
            else:
                hasher = leaf_state.copy()
                hasher.update(e.entry)
                leaf = hasher.digest()
                rows.append((e.kind, e.record_id, e.run_id, e.time_ns, e.entry, leaf, e.openings))
        tx.executemany(_INSERT_PENDING, rows)
        self._ensure_integrator()

    def index_run(self, run_id: str) -> int:
        """Log a ``run.index`` entry listing every entry of ``run_id`` now (``audit export``
        does before it signs the checkpoint a bundle is proven in); its index."""
        if not self._pending_mode:
            with self.store.transaction() as tx:
                return self.append(tx, [IndexMark(run_id, time.time_ns())])
        with self.store.transaction() as tx:
            self.submit(tx, [IndexMark(run_id, time.time_ns())])
            row = tx.fetchone("SELECT MAX(id) FROM ledger_pending")
        self.integrate_pending(upto=int(row[0]) if row and row[0] is not None else None)
        with self.store.read() as rtx:
            got = rtx.fetchone(
                "SELECT MAX(seq) FROM ledger_entries WHERE run_id = ? AND kind = ?",
                (run_id, RUN_INDEX),
            )
        if got is None or got[0] is None:
            raise LedgerError(f"the index of run {run_id} was not integrated into the log")
        return int(got[0])

    def _index_entry(self, run_id: str, now: int, seqs: Iterable[int], prev: int | None) -> Encoded:
        """A ``run.index`` entry: the indices of every entry of the run in the log (``seqs``)
        and the index entry before it (``prev``)."""
        entries = sorted(set(seqs))
        data = {"run_id": run_id, "entries": entries, "count": len(entries), "previous": prev}
        return self.encoder.encode(
            RUN_INDEX, f"{run_id}#index", run_id, data, now, top_level_keys=True
        )

    def _logged_by_run(self, tx: Tx, run_ids: Sequence[str]) -> dict[str, tuple[list[int], int]]:
        """Per run: the indices of its entries in the log, and its latest index entry's
        (-1: none); one query per 500 runs."""
        out: dict[str, tuple[list[int], int]] = {}
        for part in chunked(run_ids, 500):
            marks = ", ".join("?" * len(part))
            for run_id, seq, kind in tx.fetchall(
                f"SELECT run_id, seq, kind FROM ledger_entries WHERE run_id IN ({marks})",
                list(part),
            ):
                seqs, last = out.setdefault(str(run_id), ([], -1))
                seqs.append(int(seq))
                if kind == RUN_INDEX and int(seq) > last:
                    out[str(run_id)] = (seqs, int(seq))
        return out

    def _sync(self, tx: Tx) -> tuple[int, bytes]:
        # On PostgreSQL the tree head row is locked until the transaction ends: extensions
        # of the log (and checkpoints) never interleave, whoever runs them.
        row = tx.fetchone(self._head_sql)
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

    def append(
        self, tx: Tx, items: Sequence[Encoded | IndexMark], *, checkpoint: bool = True
    ) -> int:
        """Append entries as leaves inside ``tx`` now (inline sequencing); returns the index
        of the first. Thread-safe. The first append of a transaction may sign a periodic
        checkpoint of the log as it was before it (committed state)."""
        if not items:
            return -1
        with self._lock:
            first = self._extend(tx, items, checkpoint=checkpoint)
        if not self._pending_mode:  # pending mode: the integrator signs the tail
            self._schedule_tail_checkpoint()
        return first

    def _extend(
        self, tx: Tx, items: Sequence[Encoded | IndexMark | Pending], *, checkpoint: bool
    ) -> int:
        """The one definition of sequencing: give ``items`` the next indices, build each
        ``IndexMark``'s ``run.index`` entry, extend the tree, store the entries (``Pending``
        ones are moved from ``ledger_pending``), interior hashes and the new head.
        Called with ``self._lock`` held; returns the first index."""
        size, root = self._sync(tx)
        if checkpoint and tx is not self._last_tx:
            self._maybe_checkpoint(tx, size, root)
        self._last_tx = tx
        end = size + len(items)
        leaf_state = _LEAF_STATE
        leaves: list[bytes] = []
        add = leaves.append
        moved_ids: list[int] = []
        moved_seqs: list[int] = []
        if all(type(item) is Encoded for item in items):  # the write hook's usual batch
            for entry in map(_entry_of, items):
                hasher = leaf_state.copy()
                hasher.update(entry)
                add(hasher.digest())
            # rows as _ENTRY_COLUMNS: Encoded's fields, then index and leaf hash (flat)
            rows = zip(
                map(_entry_fields, items), zip(range(size, end), leaves, strict=True), strict=True
            )
            values = list(chain.from_iterable(chain.from_iterable(rows)))
        else:
            values = []
            marked = sorted({i.run_id for i in items if isinstance(i, IndexMark)})
            logged = self._logged_by_run(tx, marked) if marked else {}
            by_run = {rid: list(logged.get(rid, ((), -1))[0]) for rid in marked}
            last_index = {rid: logged.get(rid, ((), -1))[1] for rid in marked}
            seq = size
            for item in items:
                if isinstance(item, Pending):
                    h = item.leaf
                    moved_ids.append(item.id)
                    moved_seqs.append(seq)
                    run_id = item.run_id
                else:
                    if isinstance(item, IndexMark):
                        rid = item.run_id
                        prev = last_index[rid]
                        e = self._index_entry(
                            rid, item.time_ns, by_run[rid], None if prev < 0 else prev
                        )
                        last_index[rid] = seq
                    else:
                        e = item
                    hasher = leaf_state.copy()
                    hasher.update(e.entry)
                    h = hasher.digest()
                    run_id = e.run_id
                    values += (e.kind, e.record_id, run_id, e.time_ns, e.entry, e.openings, seq, h)
                if by_run and run_id in by_run:
                    by_run[run_id].append(seq)
                add(h)
                seq += 1
        frontier, nodes = _extend_tree(self._frontier, size, leaves)
        if moved_ids:
            tx.execute(_MOVE_PENDING, (moved_ids, moved_seqs))
        if values:
            _insert_entries(tx, values)
        if nodes:
            _insert_rows(tx, nodes, 2, _INSERT_NODE, _INSERT_NODES, NODE_ROWS)
        new_root = rfc9162.frontier_root(frontier)
        tx.execute("UPDATE ledger_state SET size = ?, root = ? WHERE id = 1", (end, new_root))
        # Cached now; if the transaction rolls back, _sync sees the difference next time.
        self._head = (end, new_root)
        self._frontier = frontier
        return size

    # -- integration (pending mode) ----------------------------------------------------------
    def integrate(self, limit: int | None = None) -> int:
        """Integrate up to ``limit`` (default ``INTEGRATE_BATCH``) committed pending entries,
        oldest id first, in one transaction (indices, tree, deletion of the pending rows, and
        a periodic checkpoint of the state before them). Returns how many. Safe from any
        process at any time: the tree head row lock serialises integrations."""
        with self.store.read() as rtx:  # a cheap look first: idle polls write nothing
            if rtx.fetchone("SELECT 1 FROM ledger_pending LIMIT 1") is None:
                return 0

        def integrate(tx: Tx) -> int:
            # Lock order, everywhere: the tree head row (the database), then self._lock.
            tx.fetchone(self._head_sql)  # then no other integration runs
            with self._lock:
                self._refresh_last_checkpoint(tx)
                return self._integrate_rows(tx, limit or INTEGRATE_BATCH, checkpoint=True)

        # Re-run when aborted as a deadlock or serialization failure (the cached head is
        # checked against the database's at the start of each attempt: ``_sync``).
        return self.store.run_write(integrate)

    def _integrate_rows(self, tx: Tx, limit: int, *, checkpoint: bool) -> int:
        rows = tx.fetchall(_SELECT_PENDING, (limit,))
        if not rows:
            return 0
        items: list[Encoded | IndexMark | Pending] = [
            IndexMark(str(run_id), int(created_ns))
            if leaf is None  # a run's index: built now
            else Pending(int(pid), None if run_id is None else str(run_id), bytes(leaf))
            for pid, run_id, created_ns, leaf in rows
        ]
        self._extend(tx, items, checkpoint=checkpoint)
        tx.execute(_DELETE_PENDING, ([int(r[0]) for r in rows],))
        return len(rows)

    def integrate_in(self, tx: Tx) -> int:
        """Inside the caller's write transaction ``tx``: lock the tree head until ``tx``
        ends (no integration runs meanwhile) and integrate every pending entry committed
        so far. Maintenance (redaction, pruning) calls it first, and again after reading the
        records it changes: every record it read then has its entry in the log. Returns how
        many were integrated; 0 with inline sequencing."""
        if not self._pending_mode:
            return 0
        tx.fetchone(self._head_sql)
        total = 0
        with self._lock:
            while n := self._integrate_rows(tx, INTEGRATE_BATCH, checkpoint=False):
                total += n
        return total

    def integrate_pending(self, upto: int | None = None) -> int:
        """Integrate pending entries until none with an id up to ``upto`` (default: the
        highest now) is left; what writers commit meanwhile may stay pending. Returns how
        many this call integrated. A no-op with inline sequencing."""
        if not self._pending_mode:
            return 0
        if upto is None:
            with self.store.read() as tx:
                row = tx.fetchone("SELECT MAX(id) FROM ledger_pending")
            if row is None or row[0] is None:
                return 0
            upto = int(row[0])
        total = 0
        while True:
            with self.store.read() as tx:
                row = tx.fetchone("SELECT 1 FROM ledger_pending WHERE id <= ? LIMIT 1", (upto,))
            if row is None:
                return total
            total += self.integrate()

    def pending(self, tx: Tx | None = None) -> int:
        """How many entries are acknowledged but not yet integrated (0 with inline
        sequencing)."""
        if tx is None:
            with self.store.read() as rtx:
                return self.pending(rtx)
        row = tx.fetchone("SELECT COUNT(*) FROM ledger_pending")
        return int(row[0]) if row else 0

    def _ensure_integrator(self) -> None:
        integrator = self._integrator
        if integrator is None or integrator.pid != os.getpid():
            with self._integrator_lock:
                if self._integrator is None or self._integrator.pid != os.getpid():
                    self._integrator = Integrator(self)
                    self._integrator.start()

    def stop_integrator(self) -> None:
        """Stop this process's integrator thread (if any) and give up the leader role."""
        integrator = self._integrator
        if integrator is not None and integrator.pid == os.getpid():
            integrator.stop()
        self._integrator = None

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

    def _schedule_tail_checkpoint(self) -> None:
        """Sign the entries appended last within ``checkpoint_seconds`` even when no further
        write comes (a timer thread), so the unsigned tail a truncation could remove
        unnoticed stays seconds long."""
        seconds = self.config.checkpoint_seconds
        if seconds <= 0:
            return
        if os.getpid() != self._timer_pid:  # forked: the parent's timer is not ours
            self._tail_timer, self._timer_pid = None, os.getpid()
        if self._tail_timer is not None:
            return
        timer = threading.Timer(seconds, self._sign_tail)
        timer.daemon = True
        timer.name = "flightlog-ledger-checkpoint"
        self._tail_timer = timer
        timer.start()

    def _refresh_last_checkpoint(self, tx: Tx) -> None:
        """Another process may have signed since (integrators take over from each other)."""
        last = tx.fetchone(
            "SELECT size, created_ns FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"
        )
        if last is not None and int(last[0]) > self._last_cp[0]:
            self._last_cp = (int(last[0]), int(last[1]))

    def sign_tail_if_due(self) -> None:
        """Pending mode, called by the idle integrator: sign the entries no checkpoint covers
        once ``checkpoint_seconds`` have passed since the last checkpoint."""
        seconds = self.config.checkpoint_seconds
        if seconds <= 0:
            return
        with self.store.read() as tx:
            size, _root = self.head(tx)
            self._refresh_last_checkpoint(tx)
        last_size, last_ns = self._last_cp
        if size > last_size and time.time_ns() - last_ns >= seconds * 1e9:
            try:
                self.checkpoint()
            except Exception as exc:  # a refused signature: counted, retried next period
                self.checkpoint_errors += 1
                self._last_cp = (last_size, time.time_ns())
                log.error("ledger checkpoint at size %d not signed: %s", size, exc)

    def sign_on_close(self) -> None:
        """When the store closes: sign what this process appended and no checkpoint covers
        yet (the tail a short-lived writer would otherwise leave unsigned). In pending mode:
        stop the integrator, integrate what is pending, and sign."""
        if self._pending_mode:
            integrator = self._integrator
            if integrator is None or integrator.pid != os.getpid():
                return  # this process wrote nothing
            self.stop_integrator()
            try:
                self.checkpoint()
            except Exception as exc:  # a closed store, a refused signature
                self.checkpoint_errors += 1
                log.debug("ledger tail checkpoint not signed: %s", exc)
            return
        timer = self._tail_timer
        if timer is None or os.getpid() != self._timer_pid:
            return
        timer.cancel()
        self._sign_tail()

    def _sign_tail(self) -> None:
        self._tail_timer = None
        try:
            with self._lock:
                last_size = self._last_cp[0]
                if self._head is not None and self._head[0] <= last_size:
                    return
            self.checkpoint()
        except Exception as exc:  # a closed or read-only store, a refused signature
            self.checkpoint_errors += 1
            log.debug("ledger tail checkpoint not signed: %s", exc)

    def checkpoint(self, *, git_repo: Path | None = None) -> cp_mod.Checkpoint:
        """Sign a checkpoint of the log as it is now (or return the latest, if it already
        covers every entry). Raises ``LedgerError`` if the log is empty or inconsistent with
        the previous checkpoint."""
        # Pending mode: what is acknowledged gets into the log first, so it is signed too.
        self.integrate_pending()
        # The store's transaction and the tree head row first, then the ledger's lock: the
        # order every append and integration takes them in.

        def sign(tx: Tx) -> cp_mod.Checkpoint:
            tx.fetchone(self._head_sql)
            with self._lock:
                size, root = self._sync(tx)
                if size == 0:
                    raise LedgerError("the ledger is empty; record something before checkpointing")
                return self._sign(tx, size, root)

        cp = self.store.run_write(sign)  # re-run if aborted as a deadlock
        if git_repo is not None:
            anchor.anchor_git(git_repo, cp.note, cp.origin, cp.size)
        return cp

    def checkpoint_at(self, size: int) -> cp_mod.Checkpoint:
        """A checkpoint of the log's first ``size`` entries, signed now (``audit export``: a
        bundle proven in the tree that ends with the run's fresh index). Only after the
        prefix is proven consistent with the latest stored checkpoint, which must cover it;
        neither stored nor published (that checkpoint is)."""
        with self.store.read() as tx:
            latest = self.latest_checkpoint(tx)
            if latest is None or not 0 < size <= latest.size:
                raise LedgerError(
                    f"no signed checkpoint covers the first {size} entries; sign one first"
                )
            root = self.root_at(tx, size)
            proof = self.consistency_proof(tx, size, latest.size)
        try:
            rfc9162.verify_consistency(size, latest.size, root, latest.root, proof)
        except LedgerError as exc:
            raise LedgerError(
                f"refusing to sign the log at size {size}: it is not a prefix of the checkpoint "
                f"at size {latest.size} ({exc}); run 'flightlog audit verify'"
            ) from exc
        return cp_mod.sign(self.signer(create=False), size, root)

    def _sign(self, tx: Tx, size: int, root: bytes) -> cp_mod.Checkpoint:
        row = tx.fetchone("SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1")
        # A log that has signed before never gets a new key: a process without the key file
        # (another server, another machine) must be given it, not mint its own.
        signer = self.signer(create=row is None)
        verifier = signer.verifier
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
            anchor.publish(self.config.witness_path, cp.note, cp.origin, cp.size)
        self._last_cp = (size, now)
        return cp

    def prove(self, tx: Tx, seq: int, checkpoint: cp_mod.Checkpoint) -> list[bytes]:
        if seq >= checkpoint.size:
            raise LedgerError(
                f"entry {seq} is not covered by the checkpoint of size {checkpoint.size}"
            )
        return self.inclusion_proof(tx, seq, checkpoint.size)


class Integrator:
    """Pending mode: the thread that integrates pending entries while this process leads.

    Every process that writes to a store with concurrent writers runs one; the role is a
    PostgreSQL session advisory lock (``flightlog.store.leader``), so one of them integrates
    and the others try to take over every ``TAKEOVER_S`` seconds (after a leader's process
    dies, its connection closes and its lock with it)."""

    def __init__(self, ledger: Ledger) -> None:
        from flightlog.store.leader import Leadership

        self.ledger = ledger
        self.pid = os.getpid()
        self.leader = Leadership(ledger.store.url, INTEGRATOR_ROLE)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="flightlog-ledger-integrator", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        checked = 0.0
        failures = 0
        try:
            while not self._stop.is_set():
                if not self.leader.held:
                    if not self.leader.try_acquire():
                        self._stop.wait(TAKEOVER_S)
                        continue
                    checked = time.monotonic()
                elif time.monotonic() - checked >= TAKEOVER_S:
                    if not self.leader.check():  # the lock connection was lost
                        continue
                    checked = time.monotonic()
                try:
                    n = self.ledger.integrate()
                    if n == 0:
                        self.ledger.sign_tail_if_due()
                    failures = 0
                except Exception as exc:  # a lost connection, a closed store: retry later
                    failures += 1
                    self.ledger.integration_errors += 1
                    log.warning("ledger integrator: %s", exc)
                    if failures >= RELEASE_AFTER_FAILURES:  # let another process try
                        self.leader.release()
                        failures = 0
                    self._stop.wait(TAKEOVER_S)
                    continue
                if n < INTEGRATE_BATCH:
                    self._stop.wait(POLL_S)
        finally:
            self.leader.release()
