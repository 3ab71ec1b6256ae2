"""Auditor bundles: a self-contained, offline-verifiable extract of the log.

A bundle (JSON, ``format: flightlog-audit-bundle/v1``) holds the selected entries (their
exact canonical JSON), each entry's inclusion proof in one signed checkpoint, the verifier key,
the openings of the entries' commitments that were not redacted, and the payloads those
openings reference. ``verify_bundle`` needs only ``pip install flightlog``: no store, no
database, no network. It checks the checkpoint's signature, every inclusion proof, every
opening against its commitment and every payload against its hash, and says what was proven.

Trust: the verifier key inside the bundle only says who claims to have signed it. Pass the
key you obtained independently (``--key``, e.g. from ``flightlog audit key`` or a witness)
to pin it; the report says whether the key was pinned.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from flightlog.errors import InputError, LedgerError
from flightlog.ledger import checkpoint as cp_mod
from flightlog.ledger import rfc9162
from flightlog.ledger.entry import COMMIT, commitment, committed_paths, get_path
from flightlog.ledger.log import RUN_INDEX
from flightlog.ledger.note import Verifier

FORMAT = "flightlog-audit-bundle/v1"


@dataclass(slots=True)
class BundleSummary:
    path: str
    entries: int
    runs: list[str]
    checkpoint_size: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "entries": self.entries,
            "runs": self.runs,
            "checkpoint_size": self.checkpoint_size,
        }


def export(
    ledger: Any, out: Path, *, run_id: str | None = None, since_ns: int | None = None
) -> BundleSummary:
    """Write a bundle of the entries of one run (``run_id``) or appended since ``since_ns``."""
    if (run_id is None) == (since_ns is None):
        raise InputError("export needs exactly one of a run (--run) or a time (--since)")
    store = ledger.store
    if run_id is not None:
        run_id = store.resolve_run_id(run_id)
        at = ledger.index_run(run_id)  # the run's entries as of now, committed in the log
    cp = ledger.checkpoint()  # the whole log signed (and published to the witness)
    if run_id is not None:
        # The bundle is proven in the tree that ends with that index, so a verifier can tell
        # the index is the run's latest (an index dropped from the bundle, and the entries
        # logged after the one before it, would otherwise go unnoticed).
        cp = ledger.checkpoint_at(at + 1)
    with store.read() as tx:
        if run_id is not None:
            # Every entry of the run (records, findings, attribution, incidents, conflicts,
            # redactions, its indexes): what its latest index lists.
            rows = tx.fetchall(
                "SELECT seq, entry, openings FROM ledger_entries "
                "WHERE run_id = ? AND seq < ? ORDER BY seq",
                (run_id, cp.size),
            )
        else:
            rows = tx.fetchall(
                "SELECT seq, entry, openings FROM ledger_entries "
                "WHERE created_ns >= ? AND seq < ? ORDER BY seq",
                (since_ns, cp.size),
            )
        if not rows:
            raise LedgerError(
                "nothing to export: no ledger entries match "
                + (f"run {run_id}" if run_id else "that time")
            )
        entries = []
        hashes: set[str] = set()
        runs: set[str] = set()
        for seq, entry, opened_raw in rows:
            if entry is None:
                continue  # pruned: nothing to show
            entry = bytes(entry)
            data = orjson.loads(entry).get("data") or {}
            if isinstance(data, dict) and data.get("run_id") or run_id:
                runs.add(str(data.get("run_id") or run_id))
            opened = orjson.loads(opened_raw) if opened_raw is not None else None
            for path, _salt, value in opened or []:
                if path[-1] in ("input_hash", "output_hash") and isinstance(value, str):
                    hashes.add(value)
            entries.append(
                {
                    "index": int(seq),
                    "entry": entry.decode(),
                    "proof": [base64.b64encode(h).decode() for h in ledger.prove(tx, int(seq), cp)],
                    "openings": opened,
                }
            )
    payloads = {h: d.decode("utf-8", "replace") for h, d in store.get_payloads(hashes).items()}
    bundle = {
        "format": FORMAT,
        "created_ns": str(time.time_ns()),
        "selection": {"run": run_id, "since_ns": None if since_ns is None else str(since_ns)},
        "verifier_key": ledger.verifier().encode(),
        "checkpoint": cp.note,
        "entries": entries,
        "payloads": payloads,
    }
    out = Path(out)
    out.write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
    return BundleSummary(str(out), len(entries), sorted(runs), cp.size)


@dataclass(slots=True)
class BundleReport:
    """What a verified bundle proves."""

    complete: dict[str, int]  # run -> entries proven to be all of the run's entries
    origin: str
    checkpoint_size: int
    checkpoint_root: str
    verifier_key: str
    key_pinned: bool
    entries: int
    runs: list[str]
    kinds: dict[str, int]
    opened: int
    redacted: int
    payloads: int
    selection: dict[str, Any] = field(default_factory=dict)
    # run -> its latest index, for runs whose index is not the last entry the checkpoint
    # covers (a bundle selected by time): complete only up to that index
    as_of: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items()))
        runs = ", ".join(self.runs[:5]) + (" …" if len(self.runs) > 5 else "")
        trust = (
            "pinned key" if self.key_pinned else "key from the bundle itself (pass --key to pin)"
        )
        complete = (
            "; complete: "
            + ", ".join(
                f"all {n} entries of run {r}"
                + (
                    f" up to its index, entry #{self.as_of[r]} (entries logged after it are "
                    "not proven absent)"
                    if r in self.as_of
                    else ""
                )
                for r, n in self.complete.items()
            )
            if self.complete
            else "; completeness not claimed (no run index in the bundle)"
        )
        return (
            f"verified: {self.entries} entries ({kinds}) of run(s) {runs or '-'} are included in "
            f"checkpoint {self.origin} size {self.checkpoint_size} root {self.checkpoint_root}, "
            f"signed by {self.verifier_key} ({trust}); "
            f"{self.opened} committed values opened, {self.redacted} redacted, "
            f"{self.payloads} payloads match their hashes" + complete
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "origin": self.origin,
            "checkpoint_size": self.checkpoint_size,
            "checkpoint_root": self.checkpoint_root,
            "verifier_key": self.verifier_key,
            "key_pinned": self.key_pinned,
            "entries": self.entries,
            "runs": self.runs,
            "kinds": self.kinds,
            "opened": self.opened,
            "redacted": self.redacted,
            "payloads": self.payloads,
            "selection": self.selection,
            "complete": self.complete,
            "complete_as_of": self.as_of,
            "summary": self.summary(),
        }


def verify_bundle(path: Path, trusted_key: str | None = None) -> BundleReport:
    """Verify a bundle file offline. Raises ``LedgerError`` naming the first failure."""
    try:
        bundle = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read bundle {path}: {exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise LedgerError(f"bundle {path} is not JSON: {exc}") from exc
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise LedgerError(f"{path} is not a Flightlog audit bundle (format {FORMAT})")
    try:
        verifier = Verifier.parse(trusted_key or bundle["verifier_key"])
        if trusted_key and bundle.get("verifier_key") != verifier.encode():
            # The pinned key decides; a different key in the bundle is worth saying.
            pass
        cp = cp_mod.open_checkpoint(bundle["checkpoint"], verifier)
        entries = bundle["entries"]
        payloads = bundle.get("payloads") or {}
    except (KeyError, TypeError) as exc:
        raise LedgerError(f"bundle {path} lacks a required field: {exc}") from exc
    if not entries:
        raise LedgerError(f"bundle {path} holds no entries")
    kinds: Counter[str] = Counter()
    runs: set[str] = set()
    present: set[int] = set()
    indexes: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    opened = redacted = 0
    committed_hashes: set[str] = set()
    for item in entries:
        try:
            index = int(item["index"])
            raw = str(item["entry"]).encode()
            proof = [base64.b64decode(h, validate=True) for h in item["proof"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(f"bundle entry is malformed: {exc}") from exc
        if index in present:
            raise LedgerError(f"bundle {path} holds entry #{index} twice")
        try:
            rfc9162.verify_inclusion(index, cp.size, rfc9162.leaf_hash(raw), proof, cp.root)
        except LedgerError as exc:
            raise LedgerError(f"entry #{index} does not verify: {exc}") from exc
        entry = orjson.loads(raw)
        kinds[str(entry.get("kind"))] += 1
        present.add(index)
        data = entry.get("data") or {}
        if entry.get("kind") == RUN_INDEX and isinstance(data, dict):
            indexes.setdefault(str(data.get("run_id")), []).append((index, data))
        if isinstance(data, dict) and data.get("run_id"):
            runs.add(str(data["run_id"]))
        if entry.get("kind") in ("run.start", "run.end"):
            runs.add(str(entry.get("id")))
        by_path = {tuple(p): (s, v) for p, s, v in (item.get("openings") or [])}
        for p in committed_paths(data):
            opening = by_path.pop(p, None)
            if opening is None:
                redacted += 1
                continue
            salt, value = opening
            if commitment(base64.b64decode(salt), value) != get_path(data, p)[COMMIT]:
                raise LedgerError(
                    f"entry #{index}: the opening of {'.'.join(p)} does not match its commitment"
                )
            opened += 1
            if p[-1] in ("input_hash", "output_hash") and isinstance(value, str):
                committed_hashes.add(value)
        if by_path:
            raise LedgerError(
                f"entry #{index}: openings for fields it does not commit: {sorted(by_path)}"
            )
    selection = dict(bundle.get("selection") or {})
    complete = _check_complete(path, selection, indexes, present, cp.size)
    as_of = {r: found[-1][0] for r, found in indexes.items() if found[-1][0] != cp.size - 1}
    for h in sorted(committed_hashes - set(payloads)):
        raise LedgerError(
            f"payload {h}, opened in the bundle's entries, is missing from it: the value "
            "it stands for cannot be shown"
        )
    for h, text in payloads.items():
        if h not in committed_hashes:
            raise LedgerError(f"payload {h} is not referenced by any opened entry")
        digest = h.removeprefix("sha256:")
        if len(digest) != 64:
            continue  # not a SHA-256 content address; shown, not verified
        if hashlib.sha256(str(text).encode()).hexdigest() != digest:
            raise LedgerError(f"payload {h} does not match its hash")
    return BundleReport(
        complete=complete,
        as_of={r: at for r, at in as_of.items() if r in complete},
        origin=cp.origin,
        checkpoint_size=cp.size,
        checkpoint_root=base64.b64encode(cp.root).decode(),
        verifier_key=verifier.encode(),
        key_pinned=trusted_key is not None,
        entries=len(entries),
        runs=sorted(runs),
        kinds=dict(kinds),
        opened=opened,
        redacted=redacted,
        payloads=len(payloads),
        selection=selection,
    )


def _check_complete(
    path: Path,
    selection: dict[str, Any],
    indexes: dict[str, list[tuple[int, dict[str, Any]]]],
    present: set[int],
    size: int,
) -> dict[str, int]:
    """Completeness: for every run the bundle holds an index of (and the run it was exported
    for, which must have one), every entry its latest index lists is in the bundle, and each
    index lists everything the one before it listed. Returns {run: entries proven}."""
    wanted = selection.get("run")
    if wanted and str(wanted) not in indexes:
        raise LedgerError(
            f"bundle {path} holds no index of run {wanted}: that the bundle holds all of the "
            "run's entries cannot be proven (export it again with this version)"
        )
    if wanted:
        # Exported for a run: its latest index is the last entry the checkpoint covers, so
        # no index of the run, nor entry after one, can have been left out of the bundle.
        last = max(at for at, _data in indexes[str(wanted)])
        if last != size - 1:
            raise LedgerError(
                f"bundle {path} does not end with the latest index of run {wanted}: its "
                f"checkpoint covers {size} entries but the last index in it is entry #{last}, "
                f"so entries of the run logged after #{last} may have been left out (a run "
                "bundle exported before run bundles were signed at their own index is read "
                "so too: export it again from the store)"
            )
    complete: dict[str, int] = {}
    for run_id, found in sorted(indexes.items()):
        found.sort(key=lambda item: item[0])
        listed_before: set[int] = set()
        for at, data in found:
            try:
                listed = {int(i) for i in data.get("entries") or []}
            except (TypeError, ValueError) as exc:
                raise LedgerError(f"the index of run {run_id} (entry #{at}) is malformed") from exc
            if not listed_before <= listed:
                gone = min(listed_before - listed)
                raise LedgerError(
                    f"the index of run {run_id} at entry #{at} omits entry #{gone}, which an "
                    "earlier index of the run listed"
                )
            listed_before = listed
        latest_at = found[-1][0]
        missing = sorted(listed_before - present)
        if missing:
            raise LedgerError(
                f"bundle {path} is incomplete: entry #{missing[0]} of run {run_id} (listed by "
                f"the run's index, entry #{latest_at}) is missing from it"
                + (f", and {len(missing) - 1} more" if len(missing) > 1 else "")
            )
        complete[run_id] = len(listed_before)
    return complete
