"""Full verification of a store's audit log (``flightlog audit verify``).

1. Recompute every leaf hash from the stored entry bytes and the whole tree from the leaves
   (RFC 9162 §2.1.1); compare with the stored leaf hashes, interior hashes and tree head.
   Read each entry's kind, record id, run id and time from its bytes and compare the
   columns beside it (``entry.relabelled``); open every entry's commitments
   (``opening.missing``/``.corrupt`` unless a redaction covers it); check that a step's or
   SDK run's later entries only close it and fill empty fields (``entry.rewrite``).
2. Check every stored checkpoint's Ed25519 signature (C2SP signed-note), its root against
   the recomputed tree at its size, and each consecutive pair's consistency proof
   (RFC 9162 §2.1.4); and the same for every checkpoint in the witness file.
3. Check every stored record (runs, steps, edges, findings) against its latest leaf,
   opening each salted commitment whose value is still held; a value may be absent only if
   a redaction entry covers it. Every record needs a leaf and every leaf's record must exist.

Pending entries (stores with concurrent writers: acknowledged, not yet integrated into the
tree) are not divergences: ``verify`` integrates what is pending when the store is writable;
what is still pending (read-only, or committed meanwhile) is counted (``pending``), its leaf
hash checked against its bytes, and a record whose latest entry is pending is compared with
that entry.

Problems are collected (up to ``max_problems``) and ordered so that ``first`` names the first
entry that diverges.

Size: one module on purpose, over 500 lines: the checks share one database snapshot and the
recomputed tree, and report into one list of problems.
"""

from __future__ import annotations

import base64
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from flightlog.errors import LedgerError
from flightlog.ledger import anchor, canonical, coverage, rfc9162
from flightlog.ledger import checkpoint as cp_mod
from flightlog.ledger.entry import (
    COMMIT,
    REDACTED,
    commitment,
    committed_paths,
    edge_data,
    edge_id,
    finding_data,
    get_path,
    run_data,
    set_path,
    step_data,
    step_record_id,
)
from flightlog.ledger.log import Ledger
from flightlog.ledger.note import Verifier
from flightlog.ledger.schema import NODE_SHIFT
from flightlog.model import DEFAULT_PROJECT, Edge

RECORD_KINDS = ("run.start", "run.end", "step", "edge", "finding")
_RANK = {
    "key": -1,
    "entry": 0,
    "record": 0,
    "payload": 0,
    "opening": 0,
    "attribution": 0,
    "node": 1,
    "checkpoint": 2,
    "witness": 2,
    "head": 2,
}


@dataclass(slots=True)
class Problem:
    """One thing that does not verify. ``index`` is the entry (leaf) it concerns, if known."""

    code: str
    message: str
    index: int | None = None
    record: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "index": self.index,
            "record": self.record,
        }


@dataclass(slots=True)
class VerifyReport:
    ok: bool
    size: int
    root: str
    entries: int
    records: int
    checkpoints: int
    witnessed: int
    redacted: int
    seconds: float
    problems: list[Problem] = field(default_factory=list)
    signed: int = 0  # entries covered by the latest valid checkpoint
    pending: int = 0  # acknowledged entries not yet integrated (not provable yet)
    records_checked: bool = True  # False: the log alone was checked (check_records=False)

    @property
    def unsigned(self) -> int:
        """Entries after the last signed checkpoint: not yet protected against truncation
        (-1: unknown, the signatures could not be checked)."""
        if self.signed < 0:
            return -1
        return max(0, self.entries - self.signed)

    def tail(self) -> str:
        if self.unsigned < 0:
            return "not known: without the key no checkpoint could be checked"
        if not self.unsigned:
            return "every entry is covered by a signed checkpoint"
        return (
            f"{self.unsigned} entries (#{self.signed}..#{self.entries - 1}) are after the last "
            "signed checkpoint: until one covers them, removing them from the end would go "
            "unnoticed ('flightlog audit checkpoint' signs one now)"
        )

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        if self.ok:
            records = f"{self.records} records" if self.records_checked else "records not checked"
            text = (
                f"ok: {self.entries} entries, {records}, {self.checkpoints} "
                f"checkpoints and {self.witnessed} witnessed checkpoints verify "
                f"(root {self.root[:16]}…)"
            )
            if self.pending:
                text += (
                    f"; {self.pending} more entries are acknowledged and pending integration "
                    "(not provable yet; the integrator adds them within seconds)"
                )
            return text
        first = self.first
        assert first is not None
        if first.code == "key.missing":
            return f"FAILED: {len(self.problems)} problem(s); {first.message}"
        where = f"entry #{first.index}" if first.index is not None else "a record"
        return (
            f"FAILED: {len(self.problems)} problem(s); first divergence at {where}: {first.message}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "size": self.size,
            "root": self.root,
            "entries": self.entries,
            "records": self.records,
            "records_checked": self.records_checked,
            "checkpoints": self.checkpoints,
            "witnessed": self.witnessed,
            "redacted": self.redacted,
            "signed": self.signed,
            "unsigned": self.unsigned,
            "pending": self.pending,
            "seconds": round(self.seconds, 3),
            "summary": self.summary(),
            "problems": [p.to_dict() for p in self.problems],
        }


class _Levels(Mapping[rfc9162.NodeKey, bytes]):
    """All complete-subtree hashes of an in-memory tree, as a (level, index) mapping."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.levels = [leaves]
        cur = leaves
        while len(cur) > 1:
            nh = rfc9162.node_hash
            nxt = [nh(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
            self.levels.append(nxt)
            cur = nxt

    def __getitem__(self, key: rfc9162.NodeKey) -> bytes:
        level, idx = key
        try:
            return self.levels[level][idx]
        except IndexError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[rfc9162.NodeKey]:
        for level, hashes in enumerate(self.levels):
            for i in range(len(hashes)):
                yield (level, i)

    def __len__(self) -> int:
        return sum(len(h) for h in self.levels)

    def root(self, size: int) -> bytes:
        if size == 0:
            return rfc9162.EMPTY_ROOT
        return rfc9162.range_root(0, size, self)


def verify(
    ledger: Ledger,
    *,
    verifier: Verifier | None = None,
    witness: Path | None = None,
    max_problems: int = 100,
    check_records: bool = True,
    save_result: bool = True,
    record: bool | None = None,
) -> VerifyReport:
    """Verify the whole log of ``ledger``'s store; see the module docstring.

    ``check_records``: also compare every stored record (runs, steps, edges, findings,
    incidents, notifications) with its entry (step 3); False checks the log alone (entries,
    tree, checkpoints) and the report says "records not checked". ``save_result``: record
    the outcome as the store's last verification (what ``audit status`` shows), when the
    store is writable. ``record``: deprecated, the old name of ``check_records``."""
    if record is not None:
        warnings.warn(
            "verify(record=...) is deprecated: it chose whether the stored records are "
            "checked against their entries, so it is now check_records=...; whether the "
            "result is saved is save_result=...",
            DeprecationWarning,
            stacklevel=2,
        )
        check_records = record
    t0 = time.perf_counter()
    store = ledger.store
    problems: list[Problem] = []

    def add(code: str, message: str, index: int | None = None, rec: str | None = None) -> None:
        if len(problems) < max_problems:
            problems.append(Problem(code, message, index, rec))

    key_problem: str | None = None
    if verifier is None:
        try:
            verifier = ledger.verifier()
        except LedgerError as exc:  # key file missing or unreadable: say so, check the rest
            key_problem = str(exc)
    leaves: list[bytes] = []
    latest: dict[str, int] = {}
    redacted_seqs: set[int] = set()
    pruned_seqs: set[int] = set()
    empty: list[tuple[int, str, str]] = []
    # Entries whose openings no record comparison reads: a record's earlier entries, and
    # the entries of other capabilities (audit records); their openings are checked apart.
    superseded: list[int] = []
    if ledger.pending_mode and not getattr(store, "readonly", False):
        try:
            ledger.integrate_pending()
        except Exception as exc:  # e.g. a checkpoint refused: verification says more
            add("pending.integration", f"pending entries could not be integrated: {exc}", None)
    # The witness is read before the store's snapshot begins: a checkpoint is published
    # only for a tree size already committed, so every one read here is within the
    # snapshot. (Read after it, a checkpoint that writers and the integrator signed
    # meanwhile would look "beyond the log": a false truncation alarm.)
    wpath = witness if witness is not None else ledger.config.witness_path
    wfile = anchor.witness_file(wpath, ledger.origin) if wpath is not None else None
    witnessed_notes: list[str] = []
    if wfile is not None:
        try:
            witnessed_notes = anchor.read_witness(wfile)
        except (LedgerError, OSError, UnicodeDecodeError) as exc:
            add("witness.unreadable", f"witness {wfile}: {exc}", None)
    with store.read() as tx:
        head_size, head_root = ledger.head(tx)
        # 1. entries and leaves. Only the entry's bytes are hashed: its kind, record id,
        # run id and time are read from them, never from the columns stored beside it,
        # which an editor of the database could relabel unnoticed by the tree (a run's
        # index relabelled as a retention.prune would excuse deleting the whole run).
        expected = 0
        # entries with commitments but no openings, and the superseded entries' openings:
        # checked once the redaction and pruning entries are all known
        unopened: list[tuple[int, str, str]] = []
        # the entries of each run or step logged more than once, in order
        chains: dict[str, list[int]] = {}
        for seq, kind, record_id, run_id, created, entry, leaf, no_openings in _rows(
            tx,
            "SELECT seq, kind, record_id, run_id, created_ns, entry, leaf, "
            "openings IS NULL FROM ledger_entries ORDER BY seq",
        ):
            seq = int(seq)
            if seq != expected:
                add(
                    "entry.missing",
                    f"entries #{expected}..#{seq - 1} are missing (deleted from the log)",
                    expected,
                )
                # keep positions aligned with the stored indices
                leaves.extend([b"\0" * 32] * (seq - expected))
                expected = seq
            kind, record_id = str(kind), str(record_id)
            if entry is None:
                empty.append((seq, kind, record_id))
                leaves.append(bytes(leaf))
            else:
                entry = _bytes(entry)
                h = rfc9162.leaf_hash(entry)
                if h != bytes(leaf):
                    add(
                        "entry.changed",
                        f"entry #{seq} ({kind} {record_id}) does not match its leaf hash: its "
                        "content was changed after it was logged",
                        seq,
                        record_id,
                    )
                leaves.append(h)
                logged = _logged_fields(entry)
                if logged is None:
                    add("entry.malformed", f"entry #{seq} is not a ledger entry", seq, record_id)
                else:
                    stored = (kind, record_id, run_id, created)
                    for col, want, have in zip(_ENTRY_COLS, logged[:4], stored, strict=True):
                        if want is not _ANY and str(want) != str(have):
                            add(
                                "entry.relabelled",
                                f"entry #{seq}: its {col} column says {_short(have)} but the "
                                f"logged entry says {_short(want)}: the columns kept beside "
                                "the log were edited",
                                seq,
                                str(logged[1]),
                            )
                    kind, record_id, data = str(logged[0]), str(logged[1]), logged[4]
                    if kind in ("redaction", "retention.prune"):
                        target = redacted_seqs if kind == "redaction" else pruned_seqs
                        try:
                            target.update(int(i) for i in data.get("entries", []))
                        except (AttributeError, TypeError, ValueError):
                            add("entry.malformed", f"{kind} entry #{seq} is malformed", seq)
                    if no_openings and b'"$commit"' in entry and committed_paths(data):
                        unopened.append((seq, kind, record_id))
            if kind in RECORD_KINDS:
                before = latest.get(record_id)
                if before is not None:
                    superseded.append(before)
                    if kind != "edge" and kind != "finding":
                        chains.setdefault(record_id, [before]).append(seq)
                latest[record_id] = seq
            elif entry is not None:
                superseded.append(seq)  # audit entries: no record compares their openings
            expected += 1
        for seq, kind, record_id in unopened:
            if seq not in redacted_seqs and seq not in pruned_seqs:
                add(
                    "opening.missing",
                    f"the openings of entry #{seq} ({kind} {record_id}) were deleted and no "
                    "redaction covers it: its committed values can no longer be shown",
                    seq,
                    record_id,
                )
        for seq, raw, opened in _entries_at(tx, superseded, "AND openings IS NOT NULL"):
            why = check_openings_shape(_bytes(opened)) or check_openings(
                raw, _bytes(opened), complete=seq not in redacted_seqs
            )
            if why:
                fields = _logged_fields(raw)
                what, rid = (str(fields[0]), str(fields[1])) if fields else ("?", "?")
                add(
                    "opening.corrupt",
                    f"the openings of entry #{seq} ({what} {rid}) {why}: the "
                    "values and salts kept beside the log were damaged or edited",
                    seq,
                    rid,
                )
        _check_transitions(tx, chains, add)
        # 1a. pending entries: acknowledged, not yet in the tree
        pending = _pending_entries(tx, add)
        n = len(leaves)
        tree = _Levels(leaves)
        root = tree.root(n)
        if head_size != n:
            add(
                "head.size",
                f"the tree head says {head_size} entries but {n} are stored"
                + (
                    " (entries were deleted from the end)"
                    if head_size > n
                    else " (entries were inserted)"
                ),
                min(head_size, n),
            )
        elif head_root != root:
            add("head.root", "the stored tree head's root does not match the entries", None)

        # 1b. interior hashes
        mask = (1 << NODE_SHIFT) - 1
        for nid, h in _rows(tx, "SELECT id, hash FROM ledger_nodes ORDER BY id"):
            level, idx = int(nid) >> NODE_SHIFT, int(nid) & mask
            try:
                want = tree[(level, idx)]
            except KeyError:
                add(
                    "node.extra",
                    f"an interior hash for leaves #{idx << level}..#{((idx + 1) << level) - 1} "
                    "exists but those entries do not",
                    idx << level,
                )
                continue
            if bytes(h) != want:
                add(
                    "node.changed",
                    f"the stored hash over entries #{idx << level}..#{((idx + 1) << level) - 1} "
                    "does not match them: entries in that range were changed, reordered or "
                    "replaced",
                    idx << level,
                )

        # 2. checkpoints
        notes = ledger.checkpoint_notes(tx)
        good: list[cp_mod.Checkpoint] = []
        if verifier is None:
            if notes or witnessed_notes:
                add("key.missing", f"{key_problem}; signatures were not checked", None)
            notes_to_check: list[tuple[int, int, str]] = []
        else:
            notes_to_check = notes
        for size_col, _created, note_text in notes_to_check:
            assert verifier is not None
            try:
                cp = cp_mod.open_checkpoint(note_text, verifier)
            except (LedgerError, ValueError) as exc:
                add("checkpoint.signature", f"checkpoint stored for size {size_col}: {exc}", None)
                continue
            if cp.size != size_col:
                add(
                    "checkpoint.size",
                    f"checkpoint row for size {size_col} holds a note for size {cp.size}",
                    None,
                )
            _check_against_tree(cp, tree, n, good, add, "checkpoint")
            good.append(cp)
        for a, b in zip(good, good[1:], strict=False):
            if a.size <= n and b.size <= n and a.size > 0:
                try:
                    proof = rfc9162.consistency_proof(a.size, b.size, lambda k: tree)
                    rfc9162.verify_consistency(a.size, b.size, a.root, b.root, proof)
                except LedgerError as exc:
                    add(
                        "checkpoint.consistency",
                        f"checkpoints {a.size} and {b.size}: {exc}",
                        a.size,
                    )
        witnessed = 0
        if verifier is not None:
            for note_text in witnessed_notes:
                try:
                    cp = cp_mod.open_checkpoint(note_text, verifier)
                except (LedgerError, ValueError) as exc:
                    add("witness.signature", f"witness file {wfile}: {exc}", None)
                    continue
                witnessed += 1
                _check_against_tree(cp, tree, n, [], add, f"witnessed checkpoint ({wfile})")
        signed = max((c.size for c in good), default=0)

        # 3. records
        records = 0
        if check_records:
            dialect = getattr(store, "dialect", None)
            checks: list[tuple[str, Callable[[], int]]] = [
                (
                    "records",
                    partial(_check_records, tx, latest, redacted_seqs, pruned_seqs, add, pending),
                ),
                ("incidents", partial(coverage.check_incidents, tx, add, dialect)),
                (
                    "attributions",
                    partial(coverage.check_attributions, tx, add, redacted_seqs, dialect),
                ),
                ("notifications", partial(coverage.check_notifications, tx, add, dialect)),
            ]
            for what, check in checks:
                try:
                    records += check()
                except Exception as exc:  # damage we did not foresee: a finding, not a crash
                    add(
                        "store.unreadable",
                        f"checking the {what} failed ({type(exc).__name__}: {exc}): the store's "
                        "tables were damaged or altered",
                        None,
                    )
    # The first problem names the first divergent entry: problems about one entry come
    # before those about a range of entries (interior hashes), then checkpoints and the head.
    problems.sort(key=lambda p: (_RANK.get(p.code.split(".")[0], 3), p.index is None, p.index or 0))
    report = VerifyReport(
        ok=not problems,
        size=n,
        root=base64.b64encode(root).decode(),
        entries=n,
        records=records,
        checkpoints=len(notes),
        witnessed=witnessed,
        redacted=len(redacted_seqs),
        signed=min(signed, n) if verifier is not None else -1,
        seconds=time.perf_counter() - t0,
        problems=problems,
        pending=len(pending.rows),
        records_checked=check_records,
    )
    if save_result:
        _remember(ledger, report)
    return report


def check_openings_shape(opened: bytes) -> str | None:
    """Why an entry's stored openings are not a readable list of (path, salt, value), or
    None. (Each record's latest entry has its openings checked against its commitments when
    the record is compared; ``check_openings`` does it for any one entry.)"""
    try:
        items = orjson.loads(opened)
    except orjson.JSONDecodeError:
        return "are not readable (not JSON)"
    if not isinstance(items, list):
        return "are not a list of openings"
    for item in items:
        if (
            not isinstance(item, list)
            or len(item) != 3
            or not isinstance(item[0], list)
            or not isinstance(item[1], str)
        ):
            return "hold an opening that is not (path, salt, value)"
    return None


def check_openings(entry: bytes, opened: bytes, *, complete: bool = False) -> str | None:
    """Why an entry's stored openings do not open its commitments, or None if they do.
    ``complete``: every commitment of the entry must be opened (an entry no redaction
    covers)."""
    try:
        items = orjson.loads(opened)
        data = orjson.loads(entry)["data"]
        if not isinstance(items, list):
            return "are not a list of openings"
        seen = set()
        for item in items:
            path, salt, value = item
            held = get_path(data, tuple(path))
            if not isinstance(held, dict) or COMMIT not in held:
                return f"open {'.'.join(map(str, path))}, which the entry does not commit"
            if commitment(base64.b64decode(salt, validate=True), value) != held[COMMIT]:
                return f"do not match the commitment of {'.'.join(map(str, path))}"
            seen.add(tuple(path))
        if complete:
            for path in committed_paths(data):
                if path not in seen:
                    shown = ".".join(path)
                    return f"lack the value of {shown} although no redaction covers the entry"
    except Exception as exc:  # any damage: a finding, never a traceback
        return f"are not readable ({type(exc).__name__})"
    return None


def _check_transitions(tx: Any, chains: dict[str, list[int]], add: Any) -> None:
    """Facts are append-only in the log too: a step's, or an SDK run's, later entry may
    close it (``running`` to a final status) and fill fields that were empty, never change
    a value an earlier entry logged (``store.facts``). An entry that does was appended by
    someone other than the store (the tree recomputed around it): ``entry.rewrite``.
    Ingested runs are not checked: their outcome is derived from their spans and
    re-derived as spans arrive, and a stand-in run is replaced by the real one."""
    seqs = sorted({s for chain in chains.values() for s in chain})
    logged: dict[int, dict[str, Any]] = {}
    stand_ins: set[int] = set()  # run entries of a stand-in, or whose attributes are unknown
    for seq, raw, opened in _entries_at(tx, seqs):
        fields = _logged_fields(raw)
        if fields is None:
            continue
        logged[seq] = fields[4]
        if fields[0] in _RUN_KINDS and _stand_in(fields[4], opened):
            stand_ins.add(seq)
    for record_id, chain in chains.items():
        earlier: dict[str, Any] | None = None
        at = -1
        for seq in chain:
            data = logged.get(seq)
            if data is None:
                continue  # pruned or malformed: reported elsewhere
            if earlier is not None and (
                "run_id" in earlier  # a step
                or (earlier.get("source") == "sdk" and at not in stand_ins)  # an SDK run
            ):
                why = _rewritten(earlier, data)
                if why:
                    add(
                        "entry.rewrite",
                        f"entry #{seq} rewrites {record_id}, which entry #{at} logged: {why}; "
                        "facts are never overwritten, so this entry was not appended by the "
                        "store",
                        seq,
                        record_id,
                    )
            earlier, at = data, seq


def _entries_at(tx: Any, seqs: list[int], where: str = "") -> Iterator[tuple[int, bytes, Any]]:
    """(seq, entry bytes, openings) of the entries ``seqs`` that still hold content."""
    for part in (seqs[i : i + 500] for i in range(0, len(seqs), 500)):
        marks = ", ".join("?" * len(part))
        for seq, raw, opened in tx.fetchall(
            f"SELECT seq, entry, openings FROM ledger_entries WHERE seq IN ({marks}) "
            f"AND entry IS NOT NULL {where}",
            part,
        ):
            yield int(seq), _bytes(raw), opened


def _stand_in(data: dict[str, Any], opened: Any) -> bool:
    """Whether a run entry may be a stand-in (``store.facts``: the real run replaces it): its
    attributes, opened, mark it so, or cannot be opened (redacted) to tell."""
    from flightlog.store.facts import CLOSED_IDLE, PLACEHOLDER

    attrs = data.get("attributes")
    if not isinstance(attrs, dict) or COMMIT not in attrs:
        return isinstance(attrs, dict) and (
            attrs.get(PLACEHOLDER) is True or attrs.get(CLOSED_IDLE) is True
        )
    try:
        for path, _salt, value in orjson.loads(_bytes(opened)):
            if path == ["attributes"] and isinstance(value, dict):
                return value.get(PLACEHOLDER) is True or value.get(CLOSED_IDLE) is True
    except Exception:  # no openings (redacted) or damaged (reported apart): cannot tell
        return True
    return True


def _rewritten(earlier: dict[str, Any], later: dict[str, Any]) -> str | None:
    """Why ``later`` is not a transition ``store.facts`` allows from ``earlier``, or None."""
    for key, was in earlier.items():
        now = later.get(key)
        if key == "status":
            if was != "running" and now != was:
                return f"status {_short(was)} became {_short(now)}"
            continue
        if was is None or key == "attributes":
            continue  # may be filled; attribute maps are committed whole
        if isinstance(was, dict) and COMMIT in was:
            continue  # a commitment: salted afresh in every entry
        if isinstance(was, dict) and isinstance(now, dict):
            # an error: its type is in the leaf, its texts committed
            was = {k: v for k, v in was.items() if not isinstance(v, dict)}
            now = {k: v for k, v in now.items() if not isinstance(v, dict)}
        if now != was:
            return f"{key} {_short(was)} became {_short(now)}"
    return None


# the columns stored beside an entry, in the order ``_logged_fields`` gives them
_ENTRY_COLS = ("kind", "record_id", "run_id", "created_ns")
_ANY = object()  # a column the entry does not determine
_RUN_KINDS = ("run.start", "run.end")


def _logged_fields(entry: bytes) -> tuple[Any, Any, Any, Any, dict[str, Any]] | None:
    """(kind, record id, run id, time, data) as the entry's bytes hold them (the run id
    ``_ANY`` where the entry does not name one), or None if it is not an entry."""
    try:
        e = orjson.loads(entry)
        kind, rid, when, data = e["kind"], e["id"], e["time"], e["data"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(kind, str) or not isinstance(rid, str):
        return None
    # the run id the log writes beside it: a run's own id, else its data's run_id
    run: Any = rid if kind in _RUN_KINDS else data.get("run_id") or None
    if isinstance(run, (dict, list)):
        run = _ANY
    return kind, rid, run, when, data


def _bytes(v: Any) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)


def _rows(tx: Any, sql: str, chunk: int = 20_000) -> Iterator[tuple[Any, ...]]:
    """Iterate a large ordered query in keyset pages (bounded memory, portable SQL)."""
    base = sql.replace(" ORDER BY", " WHERE {} > ? ORDER BY", 1)
    key = sql.split("ORDER BY", 1)[1].strip()
    last = -1
    while True:
        rows = tx.fetchall(base.format(key) + f" LIMIT {chunk}", (last,))
        if not rows:
            return
        yield from rows
        last = rows[-1][0]
        if len(rows) < chunk:
            return


def _check_against_tree(
    cp: cp_mod.Checkpoint, tree: _Levels, n: int, good: list[cp_mod.Checkpoint], add: Any, what: str
) -> None:
    if cp.size > n:
        add(
            "checkpoint.beyond",
            f"{what} for size {cp.size} is beyond the log's {n} entries: the log was truncated "
            "or the database replaced by an older copy",
            n,
        )
        return
    if tree.root(cp.size) != cp.root:
        lo = max(
            (g.size for g in good if g.size <= cp.size and tree.root(g.size) == g.root), default=0
        )
        add(
            "checkpoint.root",
            f"{what} for size {cp.size} does not match the entries: an entry in "
            f"#{lo}..#{cp.size - 1} was changed, removed, inserted or reordered after it was "
            "signed",
            lo,
        )


@dataclass(slots=True)
class _Pending:
    rows: list[int] = field(default_factory=list)  # ids of every pending row
    # per record (record kinds only): its latest pending entry and openings
    latest: dict[str, tuple[int, bytes, bytes | None]] = field(default_factory=dict)


def _pending_entries(tx: Any, add: Any) -> _Pending:
    """The pending entries (none on stores that extend the log inline): each leaf hash is
    checked against the entry's bytes; the latest per record is kept for the records check."""
    out = _Pending()
    for pid, kind, record_id, entry, leaf, opened in _rows(
        tx, "SELECT id, kind, record_id, entry, leaf, openings FROM ledger_pending ORDER BY id"
    ):
        out.rows.append(int(pid))
        if entry is None:
            continue  # a run's index, built when integrated
        raw = _bytes(entry)
        if leaf is None or rfc9162.leaf_hash(raw) != bytes(leaf):
            add(
                "pending.changed",
                f"pending entry {pid} ({kind} {record_id}) does not match its leaf hash: it "
                "was changed after it was written",
                None,
                str(record_id),
            )
        if kind in RECORD_KINDS:
            out.latest[str(record_id)] = (
                int(pid),
                raw,
                None if opened is None else _bytes(opened),
            )
    return out


def _check_records(
    tx: Any,
    latest: dict[str, int],
    redacted: set[int],
    pruned: set[int],
    add: Any,
    pending: _Pending | None = None,
) -> int:
    from flightlog.store._columns import (
        FINDING_COLUMNS,
        RUN_COLUMNS,
        STEP_COLUMNS,
        finding_from_row,
        run_from_row,
        step_from_row,
    )

    wanted: list[tuple[int, str, dict[str, Any]]] = []
    seen: set[str] = set()
    records = 0
    pending_latest = pending.latest if pending is not None else {}

    def want(record_id: str, data: dict[str, Any], what: str) -> None:
        nonlocal records
        records += 1
        seen.add(record_id)
        held = pending_latest.get(record_id)
        if held is not None:  # its latest entry is pending: compare with that one
            pid, raw, opened_raw = held
            try:
                opened = orjson.loads(opened_raw) if opened_raw is not None else None
                msg = compare(raw, data, opened, False)
            except Exception as exc:
                msg = f"its openings are malformed ({type(exc).__name__}: {exc})"
            if msg:
                add(
                    "record.changed",
                    f"{record_id} differs from its pending ledger entry {pid}: {msg}",
                    None,
                    record_id,
                )
            return
        seq = latest.get(record_id)
        if seq is None:
            add(
                "record.unlogged",
                f"{what} {record_id} is stored but has no ledger entry (inserted outside "
                "Flightlog, or recorded while the ledger was off: FLIGHTLOG_LEDGER=off)",
                None,
                record_id,
            )
            return
        wanted.append((seq, record_id, data))

    def unreadable(what: str, row: tuple[Any, ...], exc: Exception) -> None:
        rid = "/".join(str(v) for v in row[:2]) if what == "step" else str(row[0])
        seen.add(rid)
        add(
            "record.corrupt",
            f"{what} {rid} cannot be read ({type(exc).__name__}: {exc}): its stored columns "
            "were damaged or edited",
            latest.get(rid),
            rid,
        )

    # Runs stored in a project other than the default; entries of such runs logged before
    # run entries named projects (before the first that does) carry none, and are not
    # taken for a run moved out of the default project.
    runs_of_project: set[str] = set()
    unlogged_project: list[tuple[int, str]] = []
    first_with_project = sys.maxsize
    for row in tx.fetchall(f"SELECT {RUN_COLUMNS} FROM runs"):
        try:
            r = run_from_row(row)
            want(r.id, run_data(r), "run")
            if r.project != DEFAULT_PROJECT:
                runs_of_project.add(r.id)
        except Exception as exc:
            unreadable("run", row, exc)
    for row in tx.fetchall(f"SELECT {STEP_COLUMNS} FROM steps"):
        try:
            s = step_from_row(row)
            want(step_record_id(s.run_id, s.id), step_data(s), "step")
        except Exception as exc:
            unreadable("step", row, exc)
    for row in tx.fetchall("SELECT run_id, source, target, kind, evidence, detail FROM edges"):
        e = Edge(*row)
        want(edge_id(e), edge_data(e), "edge")
    for row in tx.fetchall(f"SELECT {FINDING_COLUMNS} FROM findings"):
        try:
            f = finding_from_row(row)
            want(f.id, finding_data(f), "finding")
        except Exception as exc:
            unreadable("finding", row, exc)

    for record_id, (pid, _raw, _opened) in pending_latest.items():
        if record_id not in seen:
            add(
                "record.deleted",
                f"pending entry {pid} records {record_id}, which is no longer stored (deleted)",
                None,
                record_id,
            )
    for record_id, seq in latest.items():
        if record_id not in seen and record_id not in pending_latest and seq not in pruned:
            add(
                "record.deleted",
                f"entry #{seq} records {record_id}, which is no longer stored (deleted)",
                seq,
                record_id,
            )

    wanted.sort()
    for i in range(0, len(wanted), 500):
        part = wanted[i : i + 500]
        seqs = [w[0] for w in part]
        marks = ", ".join("?" * len(seqs))
        entries = {
            int(s): _bytes(e)
            for s, e in tx.fetchall(
                f"SELECT seq, entry FROM ledger_entries WHERE seq IN ({marks})", seqs
            )
            if e is not None
        }
        openings: dict[int, Any] = {}
        for s, d in tx.fetchall(
            f"SELECT seq, openings FROM ledger_entries WHERE seq IN ({marks}) "
            "AND openings IS NOT NULL",
            seqs,
        ):
            try:
                openings[int(s)] = orjson.loads(_bytes(d))
            except (orjson.JSONDecodeError, TypeError, ValueError):
                openings[int(s)] = _CORRUPT
        for seq, record_id, data in part:
            raw = entries.get(seq)
            if raw is None:
                continue
            if record_id in runs_of_project:
                # Run entries have named a project other than the default only since this
                # version: one without a project, of a run stored in another project, is
                # compared without it here and judged after all (``_project_unlogged``).
                has_project = _logs_project(raw)
                if has_project:
                    first_with_project = min(first_with_project, seq)
                else:
                    data = {k: v for k, v in data.items() if k != "project"}
                    unlogged_project.append((seq, record_id))
            opened = openings.get(seq)
            if opened is _CORRUPT:
                add(
                    "opening.corrupt",
                    f"the openings of entry #{seq} ({record_id}) are not readable: the values "
                    "and salts kept beside the log were damaged or edited",
                    seq,
                    record_id,
                )
                continue
            try:
                msg = compare(raw, data, opened, seq in redacted)
            except Exception as exc:  # a malformed opening: a finding, never a traceback
                msg = f"its openings are malformed ({type(exc).__name__}: {exc})"
            if msg:
                add(
                    "record.changed",
                    f"{record_id} differs from its ledger entry #{seq}: {msg}",
                    seq,
                    record_id,
                )
    for seq, record_id in unlogged_project:
        if seq > first_with_project:  # logged by a version that names projects
            add(
                "record.changed",
                f"{record_id} differs from its ledger entry #{seq}: field(s) project "
                "(stored in another project than the default, logged in the default one)",
                seq,
                record_id,
            )
    coverage.check_payloads(tx, add)
    return records


def _logs_project(raw_entry: bytes) -> bool:
    """Whether a run's entry names its project (a project other than the default)."""
    try:
        return "project" in orjson.loads(raw_entry)["data"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return True  # malformed: compared as is, and reported by ``compare``


_CORRUPT = object()


def compare(
    raw_entry: bytes, data: dict[str, Any], opened: list[Any] | None, redacted: bool
) -> str | None:
    """Why a stored record's ``data`` differs from its entry, or None if it matches."""
    try:
        edata = orjson.loads(raw_entry)["data"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "the entry is not valid JSON"
    by_path = {tuple(p): (salt, value) for p, salt, value in (opened or [])}
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for path in committed_paths(edata):
        commit = get_path(edata, path)[COMMIT]
        current = get_path(data, path)
        opening = by_path.get(path)
        if opening is not None:
            salt, value = opening
            if commitment(base64.b64decode(salt), value) != commit:
                return f"the stored opening of {'.'.join(path)} does not match its commitment"
            if canonical.dumps(current) != canonical.dumps(value):
                return f"field {'.'.join(path)} was changed"
        else:
            if not redacted:
                return f"the value of {'.'.join(path)} is missing and no redaction covers it"
            if current not in (None, REDACTED) and not _all_redacted(current):
                return f"field {'.'.join(path)} holds a value although it was redacted"
        set_path(data, path, {COMMIT: commit})
    mine = canonical.dumps(data)
    theirs = canonical.dumps(edata)
    if mine == theirs:
        return None
    prepared = orjson.loads(mine)
    fields = sorted(k for k in set(prepared) | set(edata) if prepared.get(k) != edata.get(k))
    shown = ", ".join(
        f"{k} (stored {_short(prepared.get(k))}, logged {_short(edata.get(k))})" for k in fields[:3]
    )
    return f"field(s) {shown}"


def _all_redacted(value: Any) -> bool:
    """A map committed whole, redacted: its keys kept, every value ``"[redacted]"``."""
    return isinstance(value, dict) and all(v == REDACTED for v in value.values())


def _short(v: Any) -> str:
    text = orjson.dumps(v).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def _remember(ledger: Ledger, report: VerifyReport) -> None:
    if getattr(ledger.store, "readonly", False):
        return  # a store opened read-only is never written, not even the verification time
    try:
        with ledger.store.transaction() as tx:
            tx.execute(
                "UPDATE ledger_state SET verified_ns = ?, verified_ok = ?, verified_message = ? "
                "WHERE id = 1",
                (time.time_ns(), 1 if report.ok else 0, report.summary()[:500]),
            )
    except Exception:  # a read-only or locked store: the report is still returned
        pass
