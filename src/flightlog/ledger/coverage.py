"""What ``audit verify`` checks beyond the records: payload bytes, incidents and notifications.

Records (runs, steps, edges, findings) are compared with their latest leaf (``verify``).
The state other capabilities keep is covered by the entries they pass to ``Store.audit``:

- **payloads**: every stored payload must hash to its address (an altered payload), and every
  payload a stored run or step refers to must exist (a deleted one). Redaction clears the
  references and logs a ``redaction`` entry, so a redacted payload is told apart from a
  deleted one: the first has no reference left and a covering entry, the second has a
  reference (whose opening still verifies) and no payload.
- **incidents** (``respond_incidents``): each incident must have its ``incident.transition``
  entries; its status, who acknowledged or resolved it and when, its identifying fields
  (fingerprint, workflow, failure and root-cause step, severity, teams) and its run count and
  last run (``incident.run`` entries) must be what the entries say. An incident row without
  entries was inserted; entries without a row mean it was deleted.
- **attributions** (``forensics_attributions``): each must match its ``attribution``
  entry (root cause, failure point, chain, confidence, method, alternatives, ...; committed
  free text opened, or redacted where a redaction covers the entry); a row without an entry
  was inserted, an entry without a row (its run still stored) means it was deleted.
- **notifications** (``respond_outbox``): every delivered notification must match its
  ``alert.sent`` entry (channel, kind, summary, response code, time); a delivered row without
  an entry, or an entry whose row is gone or no longer delivered, is reported.

Values held as commitments (``{"$commit": ...}``) are not compared here: the leaf does not
hold them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from flightlog.ledger import canonical
from flightlog.ledger.config import FREE_TEXT_KEYS
from flightlog.ledger.entry import COMMIT, REDACTED, commitment
from flightlog.model import INCIDENT_OPENING_FIELDS
from flightlog.store import core
from flightlog.store.base import Tx

Add = Callable[..., None]

INCIDENT_KINDS = ("incident.transition", "incident.run")
ALERT_KIND = "alert.sent"
_INCIDENT_COLUMNS = (
    "id, fingerprint, workflow, failure_step, root_cause_step, root_cause_agent, error_class, "
    "severity, status, root_cause_team, workflow_team, opened_ns, acknowledged_ns, "
    "acknowledged_by, resolved_ns, resolved_by, run_count, first_run_id, last_run_id"
)


def _has_table(tx: Tx, name: str, dialect: str | None = None) -> bool:
    """Whether table ``name`` exists, asked of the catalog: on PostgreSQL a failed query
    would abort the transaction, and every later check in it would fail (and be skipped)."""
    if dialect == "postgresql":
        row = tx.fetchone("SELECT to_regclass(?) IS NOT NULL", (name,))
        return bool(row and row[0])
    if dialect == "sqlite":
        row = tx.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return row is not None
    try:
        tx.fetchone(f"SELECT 1 FROM {name} WHERE 1 = 0")
    except Exception:
        return False
    return True


def _same(stored: Any, logged: Any) -> bool:
    """Compare a column with a logged value (integers beyond 2**53 are logged as strings)."""
    if isinstance(logged, dict) and COMMIT in logged:
        return True  # held as a commitment: not in the leaf
    if stored is None or logged is None:
        return stored is None and logged is None
    return str(stored) == str(logged)


def _entries(tx: Tx, kinds: Iterable[str], add: Add) -> list[tuple[int, str, dict[str, Any]]]:
    kinds = list(kinds)
    marks = ", ".join("?" * len(kinds))
    out: list[tuple[int, str, dict[str, Any]]] = []
    rows = tx.fetchall(
        f"SELECT seq, kind, entry FROM ledger_entries WHERE kind IN ({marks}) ORDER BY seq",
        kinds,
    )
    # Entries acknowledged but not yet integrated (stores with concurrent writers) are
    # logged too; they come after every integrated one, numbered as if integrated next.
    head = tx.fetchone("SELECT size FROM ledger_state WHERE id = 1")
    size = int(head[0]) if head else 0
    pending = tx.fetchall(
        f"SELECT kind, entry FROM ledger_pending WHERE kind IN ({marks}) ORDER BY id", kinds
    )
    rows += [(size + i, kind, raw) for i, (kind, raw) in enumerate(pending)]
    for seq, kind, raw in rows:
        if raw is None:
            continue  # pruned
        try:
            data = orjson.loads(bytes(raw) if not isinstance(raw, str) else raw.encode())["data"]
            if not isinstance(data, dict):
                raise TypeError("data is not an object")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            add("entry.malformed", f"{kind} entry #{seq} is malformed ({exc})", int(seq))
            continue
        out.append((int(seq), str(kind), data))
    return out


def check_payloads(tx: Tx, add: Add) -> None:
    """Altered payloads (bytes that do not hash to their address) and deleted ones (a stored
    run or step refers to a payload that is not there)."""
    stored: set[str] = set()
    for h, data in core.payloads(tx):
        stored.add(h)
        digest = h.removeprefix("sha256:")
        hexdigest = len(digest) == 64 and not digest.strip("0123456789abcdef")  # all hex
        if hexdigest and hashlib.sha256(data).hexdigest() != digest:
            add(
                "payload.changed",
                f"payload {h} does not match its SHA-256: its content was changed",
                None,
                h,
            )
    for run_id, step_id, in_hash, out_hash in core.payload_references(tx):
        for what, ref in (("input", in_hash), ("output", out_hash)):
            if ref is not None and ref not in stored:
                owner = f"run {run_id}" if step_id is None else f"step {run_id}/{step_id}"
                add(
                    "payload.deleted",
                    f"the {what} payload {ref} of {owner} is missing: it was deleted (a "
                    "redaction would have cleared the reference and logged a redaction entry)",
                    None,
                    run_id if step_id is None else f"{run_id}/{step_id}",
                )


def check_incidents(tx: Tx, add: Add, dialect: str | None = None) -> int:
    """Incident rows against their ``incident.*`` entries; returns incidents checked."""
    if not _has_table(tx, "respond_incidents", dialect):
        return 0
    logged: dict[int, dict[str, Any]] = {}
    for seq, kind, data in _entries(tx, INCIDENT_KINDS, add):
        try:
            iid = int(data.get("incident"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            add("entry.malformed", f"{kind} entry #{seq} names no incident", seq)
            continue
        state = logged.setdefault(iid, {"runs": [], "seq": seq})
        if kind == "incident.run":
            state["runs"].append(data.get("run_id"))
            continue
        to = data.get("to")
        state["status"] = to
        state["status_seq"] = seq
        if to == "triggered" or data.get("from") is None:
            state["opened"] = data
        elif to in ("acknowledged", "resolved"):
            state[to] = data
    checked = 0
    rows = tx.fetchall(f"SELECT {_INCIDENT_COLUMNS} FROM respond_incidents ORDER BY id")
    names = [c.strip() for c in _INCIDENT_COLUMNS.split(",")]
    seen: set[int] = set()
    for raw in rows:
        row = dict(zip(names, raw, strict=True))
        iid = int(row["id"])
        seen.add(iid)
        checked += 1
        found = logged.get(iid)
        if found is None or "opened" not in found:
            add(
                "incident.unlogged",
                f"incident #{iid} is stored but no ledger entry records it opening "
                "(inserted outside Flightlog)",
                None,
                f"incident-{iid}",
            )
            continue
        state = found
        seq = state["status_seq"]
        diffs: list[str] = []
        opened = state["opened"]
        for name in INCIDENT_OPENING_FIELDS:
            if name in opened and not _same(row[name], opened[name]):
                diffs.append(f"{name} (stored {row[name]!r}, logged {opened[name]!r})")
        if "at_ns" in opened and not _same(row["opened_ns"], opened["at_ns"]):
            diffs.append("opened_ns")
        if row["status"] != state.get("status"):
            diffs.append(f"status (stored {row['status']!r}, logged {state.get('status')!r})")
        for step in ("acknowledged", "resolved"):
            t = state.get(step)
            by, at = row[f"{step}_by"], row[f"{step}_ns"]
            if t is None:
                if by is not None or at is not None:
                    diffs.append(f"{step}_by/{step}_ns set, but no {step} transition is logged")
                continue
            if not _same(by, t.get("actor")):
                diffs.append(f"{step}_by (stored {by!r}, logged {t.get('actor')!r})")
            if not _same(at, t.get("at_ns")):
                diffs.append(f"{step}_ns")
        if "first_run_id" in opened or state["runs"]:
            runs = state["runs"]
            want_count = 1 + len(runs)
            if int(row["run_count"]) != want_count:
                diffs.append(f"run_count (stored {row['run_count']}, logged {want_count})")
            last = runs[-1] if runs else opened.get("first_run_id", opened.get("run_id"))
            if last is not None and not _same(row["last_run_id"], last):
                diffs.append(f"last_run_id (stored {row['last_run_id']!r}, logged {last!r})")
        if diffs:
            add(
                "incident.changed",
                f"incident #{iid} differs from its ledger entries: {', '.join(diffs[:3])}",
                seq,
                f"incident-{iid}",
            )
    for iid, state in logged.items():
        if iid not in seen:
            add(
                "incident.deleted",
                f"ledger entry #{state['seq']} records incident #{iid}, which is no longer "
                "stored (deleted)",
                state["seq"],
                f"incident-{iid}",
            )
    return checked


def check_notifications(tx: Tx, add: Add, dialect: str | None = None) -> int:
    """Delivered notifications against their ``alert.sent`` entries; returns rows checked."""
    if not _has_table(tx, "respond_outbox", dialect):
        return 0
    logged: dict[str, tuple[int, dict[str, Any]]] = {}
    for seq, _kind, data in _entries(tx, (ALERT_KIND,), add):
        key = data.get("outbox", data.get("id"))
        if key is not None:
            logged[str(key)] = (seq, data)
    checked = 0
    for oid, channel, kind, summary, status, code, delivered_ns in tx.fetchall(
        "SELECT id, channel, kind, summary, status, response_code, delivered_ns "
        "FROM respond_outbox ORDER BY seq"
    ):
        entry = logged.pop(str(oid), None)
        if status != "delivered":
            if entry is not None:
                add(
                    "notification.changed",
                    f"notification {oid} is logged as sent (entry #{entry[0]}) but stored as "
                    f"{status!r}",
                    entry[0],
                    str(oid),
                )
            continue
        checked += 1
        if entry is None:
            add(
                "notification.unlogged",
                f"notification {oid} is stored as delivered but no alert.sent entry records it",
                None,
                str(oid),
            )
            continue
        seq, data = entry
        diffs = [
            name
            for name, value, key in (
                ("channel", channel, "channel"),
                ("kind", kind, "kind"),
                ("summary", summary, "summary"),
                ("response_code", code, "response_code"),
                ("delivered_ns", delivered_ns, "at_ns"),
            )
            if key in data and not _same(value, data[key])
        ]
        if diffs:
            add(
                "notification.changed",
                f"notification {oid} differs from its ledger entry #{seq}: "
                f"field(s) {', '.join(diffs)}",
                seq,
                str(oid),
            )
    for oid, (seq, _data) in logged.items():
        add(
            "notification.deleted",
            f"ledger entry #{seq} records notification {oid} as sent, but it is no longer "
            "stored (deleted)",
            seq,
            oid,
        )
    return checked


ATTRIBUTION_KIND = "attribution"


def _looks_redacted(value: Any) -> bool:
    """What redaction leaves of a committed free-text value (``ledger.redact``): the marker,
    a list of markers, or maps (alternatives) whose free text is the marker."""
    if value is None or value == "" or value == REDACTED:
        return True
    if isinstance(value, list):
        return all(_looks_redacted(v) for v in value)
    if isinstance(value, dict):
        return all(_looks_redacted(value.get(k)) for k in FREE_TEXT_KEYS if k in value)
    return False


def check_attributions(tx: Tx, add: Add, redacted: set[int], dialect: str | None = None) -> int:
    """Each stored attribution (``forensics_attributions``: root cause, owner, chain,
    confidence, method, alternatives) against its ``attribution`` entry: fields in the leaf
    compared as logged, committed ones opened (a redacted entry's only as redacted); a row
    without an entry was inserted, an entry without a row means the row was deleted.
    Returns the attributions checked."""
    if not _has_table(tx, "forensics_attributions", dialect):
        return 0
    logged: dict[str, tuple[int, dict[str, Any], Any]] = {}
    rows = tx.fetchall(
        "SELECT seq, entry, openings FROM ledger_entries WHERE kind = ? ORDER BY seq",
        (ATTRIBUTION_KIND,),
    )
    head = tx.fetchone("SELECT size FROM ledger_state WHERE id = 1")
    size = int(head[0]) if head else 0
    pending = tx.fetchall(
        "SELECT entry, openings FROM ledger_pending WHERE kind = ? ORDER BY id",
        (ATTRIBUTION_KIND,),
    )
    rows += [(size + i, raw, opened) for i, (raw, opened) in enumerate(pending)]
    for seq, raw, opened in rows:
        if raw is None:
            continue  # pruned
        try:
            entry = orjson.loads(_raw(raw))
            data = entry["data"]
            openings = orjson.loads(_raw(opened)) if opened is not None else []
            by_path = {tuple(p): (s, v) for p, s, v in openings}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # reported by the entry and openings checks
        if isinstance(data, dict):
            logged[str(entry.get("id"))] = (int(seq), data, by_path)
    checked = 0
    seen: set[str] = set()
    for run_id, root_step, confidence, text in tx.fetchall(
        "SELECT run_id, root_step_id, confidence, data FROM forensics_attributions"
    ):
        run_id = str(run_id)
        seen.add(run_id)
        checked += 1
        found = logged.get(run_id)
        if found is None:
            add(
                "attribution.unlogged",
                f"the attribution of run {run_id} is stored but has no ledger entry "
                "(inserted outside Flightlog)",
                None,
                run_id,
            )
            continue
        seq, edata, by_path = found
        try:
            stored = orjson.loads(_raw(text))
            if not isinstance(stored, dict):
                raise TypeError("not an object")
        except (orjson.JSONDecodeError, TypeError) as exc:
            add(
                "attribution.changed",
                f"the attribution of run {run_id} cannot be read ({exc}): it was edited",
                seq,
                run_id,
            )
            continue
        diffs = _attribution_diffs(stored, edata, by_path, seq in redacted)
        root = edata.get("root_cause")
        want_root = root.get("id") if isinstance(root, dict) else None
        if not _same(root_step, want_root):
            diffs.append(f"root_step_id (stored {root_step!r}, logged {want_root!r})")
        want_conf = edata.get("confidence")
        # the column holds the unrounded confidence, the record its form rounded to 3 places
        if (
            not isinstance(want_conf, (int, float))
            or confidence is None
            or (round(float(confidence), 3) != want_conf)
        ):
            diffs.append(f"confidence (stored {confidence!r}, logged {edata.get('confidence')!r})")
        if diffs:
            add(
                "attribution.changed",
                f"the attribution of run {run_id} differs from its ledger entry #{seq}: "
                f"{', '.join(diffs[:3])}",
                seq,
                run_id,
            )
    for run_id, (seq, _data, _open) in logged.items():
        # a run whose records are gone (retention) takes its attribution along; a run
        # still stored whose attribution row is gone was edited
        if run_id not in seen and tx.fetchone("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
            add(
                "attribution.deleted",
                f"ledger entry #{seq} records the attribution of run {run_id}, which is "
                "no longer stored (deleted)",
                seq,
                run_id,
            )
    return checked


def _attribution_diffs(
    stored: dict[str, Any], logged: dict[str, Any], by_path: dict[Any, Any], redacted: bool
) -> list[str]:
    diffs: list[str] = []
    for key in sorted(set(stored) | set(logged)):
        want = logged.get(key)
        have = stored.get(key)
        if isinstance(want, dict) and set(want) == {COMMIT}:
            opening = by_path.get((key,))
            if opening is not None:
                salt, _value = opening
                if commitment(base64.b64decode(salt), have) != want[COMMIT]:
                    diffs.append(f"{key} was changed")
            elif redacted and not _looks_redacted(have):
                diffs.append(f"{key} holds text although it was redacted")
            continue
        have = canonical.prepare(have)
        if canonical.dumps(have) != canonical.dumps(want):
            path, have, want = _first_difference(key, have, want)
            diffs.append(f"{path} (stored {_shown(have)}, logged {_shown(want)})")
    return diffs


def _first_difference(path: str, have: Any, want: Any) -> tuple[str, Any, Any]:
    """The first place inside two JSON values where they differ: (path, stored, logged)."""
    if isinstance(have, dict) and isinstance(want, dict):
        for k in sorted(set(have) | set(want)):
            if canonical.dumps(have.get(k)) != canonical.dumps(want.get(k)):
                return _first_difference(f"{path}.{k}", have.get(k), want.get(k))
    if isinstance(have, list) and isinstance(want, list) and len(have) == len(want):
        for i, (a, b) in enumerate(zip(have, want, strict=True)):
            if canonical.dumps(a) != canonical.dumps(b):
                return _first_difference(f"{path}[{i}]", a, b)
    return path, have, want


def _shown(v: Any) -> str:
    text = orjson.dumps(v).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def _raw(v: Any) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)
