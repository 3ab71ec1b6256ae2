"""Facts are append-only: which re-sent runs and steps are legitimate, which are rewrites.

A run or step id is written more than once for honest reasons: the SDK writes a run when it
starts and again when it ends; an exporter retries a batch it is not sure was stored; a run's
spans reach the server before its root span, so the server stores a stand-in run
(*placeholder*) until the root arrives. Anything else that would change a stored fact is a
rewrite: the store keeps the stored record, and the write reports a ``Conflict`` (the server
answers it with an OTLP partial success; the store records a finding and a ledger entry).

The states of a record and the only transitions allowed between them:

- **placeholder → open or closed** (runs only): the real run record replaces the stand-in,
  keeping the earlier start time. A placeholder never changes a stored run. A stand-in the
  server closed because its root span never came (marked ``CLOSED_IDLE``) is still a stand-in
  for this rule: the root span's run record, arriving late, replaces it too.
- **open → closed, once**: a record whose status is ``running`` may be closed by a record with
  a final status (runs: ``succeeded``/``failed``/``unknown``/``degraded``; steps:
  ``ok``/``error``). The closing record may set fields still empty (end time, output, error,
  reason, tokens...) and add attribute keys; every field already set must agree.
- **closed, then its start record late** (runs only): a ``running`` record for a closed run
  changes nothing but may fill start fields still empty (owner, version, input, attributes).
- **the same record again**: identical, or only saying less (empty fields): nothing changes.

Everything else is a conflict: a different value for a field already set (a different status
once closed, a changed input or output, name, time, error, attribute value...), or a closed
record given values it did not have when it was closed.

Derived fields are not facts and never conflict: a step's ``index`` (recomputed from start
times for ingested runs) and its ``agent`` when it was empty (inherited from an ancestor); an
ingested (non-SDK) run's outcome (``status``, ``failed_step_id``, ``reason``, ``error``),
derived from its spans each time its record is written: the latest derivation replaces the
stored one, except in a write that refused one of the run's steps (a rewrite of the root span
is a conflict of its step, and never changes the run's outcome). The server's writes derive
it in the store (``Store.write(reorder=...)``: from every stored step, under the run's lock),
so the outcome they send is not applied (``merge_run(settled=True)``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from flightlog import _json
from flightlog.model import Finding, Run, Step

CONFLICT_KIND = "fact.conflict"  # ledger entry kind of a rejected rewrite
CONFLICT_DETECTOR = "integrity"  # detector name of the finding recording it
PLACEHOLDER = "flightlog.placeholder"  # attribute marking a stand-in run (see module doc)
CLOSED_IDLE = "flightlog.closed_idle"  # a stand-in closed after its trace went idle

RUN_OPEN = "running"
STEP_OPEN = "running"

_RUN_START_FIELDS = (
    "workflow",
    "version",
    "owner",
    "service",
    "started_ns",
    "input_hash",
    "declared_steps",
    "source",
)
_RUN_END_FIELDS = ("ended_ns", "output_hash", "reason", "failed_step_id", "error")
_STEP_FIELDS = (
    "parent_id",
    "name",
    "kind",
    "owner",
    "started_ns",
    "ended_ns",
    "input_hash",
    "output_hash",
    "error",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cost",
)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A record sent with an id already stored, whose content contradicts the stored facts.

    ``fields`` holds ``(field, stored value, sent value)`` for each contradicted field.
    """

    kind: str  # "run" | "step"
    run_id: str
    step_id: str | None
    fields: tuple[tuple[str, Any, Any], ...]

    @property
    def record_id(self) -> str:
        return self.run_id if self.step_id is None else f"{self.run_id}/{self.step_id}"

    def describe_fields(self, limit: int = 3) -> str:
        parts = [
            f"{name} (stored {_short(_shown(name, stored))}, sent {_short(_shown(name, sent))})"
            for name, stored, sent in self.fields[:limit]
        ]
        more = len(self.fields) - limit
        return ", ".join(parts) + (f" and {more} more" if more > 0 else "")

    def message(self) -> str:
        what = f"run {self.run_id}" if self.step_id is None else f"step {self.record_id}"
        return (
            f"{what} is already stored with different content: {self.describe_fields()}; "
            "rejected (recorded facts are never overwritten)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "step_id": self.step_id,
            "fields": [
                {"field": n, "stored": _shown(n, s), "sent": _shown(n, x)}
                for n, s, x in self.fields
            ],
        }


# Fields whose values may be personal or secret: a conflict names them but does not copy
# their values into findings and ledger entries (which redaction could not erase).
WITHHELD = "[withheld]"
_PRIVATE_FIELDS = ("input_hash", "output_hash", "error", "reason", "attributes.")


def _shown(name: str, value: Any) -> Any:
    if value is not None and name.startswith(_PRIVATE_FIELDS):
        return WITHHELD
    return _plain(value)


def _plain(v: Any) -> Any:
    """A JSON-ready form of a field value (big integers as strings, as in ledger entries)."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**53:
        return str(v)
    return v


def _short(v: Any) -> str:
    text = _json.dumps(_plain(v))
    return text if len(text) <= 60 else text[:57] + "..."


def _norm(v: Any) -> Any:
    """A value as the store keeps it (its JSON round trip), so floats, tuples and non-string
    keys compare the way they will be read back."""
    if v is None or type(v) in (str, bool):
        return v
    if type(v) is int:
        return v
    if hasattr(v, "to_dict"):
        v = v.to_dict()
    return _json.loads(_json.dumps(v))


def _attributes(
    stored: dict[str, Any], sent: dict[str, Any], may_add: bool, out: list[tuple[str, Any, Any]]
) -> dict[str, Any] | None:
    """Merged attributes, or None when nothing changes; contradictions go to ``out``."""
    if not sent:
        return None
    sent = _norm(sent)
    added: dict[str, Any] = {}
    for key, value in sent.items():
        if key == PLACEHOLDER:
            continue
        if key in stored:
            if stored[key] != value:
                out.append((f"attributes.{key}", stored[key], value))
        else:
            added[key] = value
    if not added:
        return None
    if not may_add:
        for key, value in added.items():
            out.append((f"attributes.{key}", None, value))
        return None
    return {**stored, **added}


# An ingested run's outcome is derived from its spans (flightlog.status), so a
# record of it that is written again carries the outcome derived now: it replaces the stored one.
DERIVED_RUN_FIELDS = ("status", "failed_step_id", "reason", "error")


def merge_run(
    stored: Run, sent: Run, *, steps_refused: bool = False, settled: bool = False
) -> tuple[Run | None, Conflict | None]:
    """Apply ``sent`` to the ``stored`` run: (the new stored run, or None when nothing
    changes; the conflict, or None). On a conflict nothing changes.

    ``steps_refused``: a step of this run was refused in the same write, so an outcome derived
    with it is not applied (an ingested run keeps the outcome its stored spans gave it).
    ``settled``: the store derives this ingested run's outcome itself, later in the same
    write, from every stored step (``Store.write(reorder=...)``), so the sent one (derived
    from what its writer had seen) is not applied either."""
    if sent.attributes.get(PLACEHOLDER) is True:
        return None, None  # a stand-in never changes a stored run
    if stored.attributes.get(PLACEHOLDER) is True or (
        stored.attributes.get(CLOSED_IDLE) is True and sent.attributes.get(CLOSED_IDLE) is not True
    ):
        merged = dataclasses.replace(
            sent,
            started_ns=min(stored.started_ns, sent.started_ns),
            attributes=_norm(sent.attributes) or {},
        )
        return merged, None
    derived = () if stored.source == "sdk" else DERIVED_RUN_FIELDS
    stored_open = stored.status == RUN_OPEN
    sent_open = sent.status == RUN_OPEN
    closing = stored_open and not sent_open
    late_start = not stored_open and sent_open
    bad: list[tuple[str, Any, Any]] = []
    changes: dict[str, Any] = {}
    if derived and not sent_open and not steps_refused and not settled:
        for name in derived:  # re-derived from the spans: the sent outcome is the current one
            if getattr(sent, name) != getattr(stored, name):
                changes[name] = getattr(sent, name)
    elif not closing and not sent_open and sent.status != stored.status:
        if "status" not in derived:
            bad.append(("status", stored.status, sent.status))
    elif closing:
        changes["status"] = sent.status
    for name in _RUN_START_FIELDS + _RUN_END_FIELDS:
        if name in derived:
            continue
        s, x = getattr(stored, name), _norm(getattr(sent, name))
        if x is None:
            continue
        s = _norm(s)
        if s is None:
            fill = (
                closing or (stored_open and sent_open) or (late_start and name in _RUN_START_FIELDS)
            )
            if fill:
                changes[name] = getattr(sent, name)
            else:
                bad.append((name, None, x))
        elif s != x:
            bad.append((name, s, x))
    attrs = _attributes(stored.attributes, sent.attributes, closing or sent_open, bad)
    if bad:
        return None, Conflict("run", stored.id, None, tuple(bad))
    if attrs is not None:
        changes["attributes"] = attrs
    if not changes:
        return None, None
    return dataclasses.replace(stored, **changes), None


def merge_step(stored: Step, sent: Step) -> tuple[Step | None, Conflict | None]:
    """Apply ``sent`` to the ``stored`` step, as ``merge_run`` does for runs."""
    stored_open = stored.status == STEP_OPEN
    sent_open = sent.status == STEP_OPEN
    closing = stored_open and not sent_open
    bad: list[tuple[str, Any, Any]] = []
    changes: dict[str, Any] = {}
    if closing:
        changes["status"] = sent.status
    elif not sent_open and sent.status != stored.status:
        bad.append(("status", stored.status, sent.status))
    for name in _STEP_FIELDS:
        s, x = getattr(stored, name), _norm(getattr(sent, name))
        if x is None:
            continue
        s = _norm(s)
        if s is None:
            if closing or (stored_open and sent_open):
                changes[name] = getattr(sent, name)
            else:
                bad.append((name, None, x))
        elif s != x:
            bad.append((name, s, x))
    # The agent of a step that had none may be inherited (derived); a given one is a fact.
    if sent.agent is not None:
        if stored.agent is None:
            changes["agent"] = sent.agent
        elif stored.agent != sent.agent:
            bad.append(("agent", stored.agent, sent.agent))
    attrs = _attributes(stored.attributes, sent.attributes, closing or stored_open, bad)
    if bad:
        return None, Conflict("step", stored.run_id, stored.id, tuple(bad))
    if attrs is not None:
        changes["attributes"] = attrs
    if not changes:
        return None, None
    return dataclasses.replace(stored, **changes), None


def conflict_record(c: Conflict, now_ns: int) -> dict[str, Any]:
    """The ledger entry's data for a rejected rewrite (``Store.audit`` kind ``fact.conflict``).

    Its ``id`` is the conflicting record's id, never a stored record's own entry: the entry
    says that someone tried, not what is stored."""
    return {
        "id": f"{c.record_id}#conflict",
        "run_id": c.run_id,
        "record": c.record_id,
        **{k: v for k, v in c.to_dict().items() if k not in ("run_id",)},
        "time_ns": str(now_ns),
    }


def conflict_finding(c: Conflict, now_ns: int) -> Finding:
    """A warning finding on the run, so ``show`` and ``detect`` say that a rewrite of one of
    its records was attempted and refused. Its id depends on the attempted content, so the
    same attempt repeated is one finding (each attempt still gets its ledger entry)."""
    digest = hashlib.sha256(_json.dumps([c.record_id, c.to_dict()]).encode()).hexdigest()
    return Finding(
        id=f"conflict-{digest[:24]}",
        run_id=c.run_id,
        detector=CONFLICT_DETECTOR,
        severity="warning",
        message=c.message(),
        step_id=None,
        evidence={"kind": CONFLICT_KIND, "record": c.record_id, "fields": c.to_dict()["fields"]},
        created_ns=now_ns,
    )
