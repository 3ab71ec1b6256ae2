"""Record reads and writes in portable SQL, shared by the SQLite and PostgreSQL stores.

Size: over 500 lines on purpose: the store owns core SQL (docs/architecture.md), so every
statement against the core tables is here; column lists and row codecs are generated
(``store/_columns.py``), connections and transactions are per store.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from operator import itemgetter
from typing import Any, TypeVar

from flightlog import _json
from flightlog.errors import NotFoundError, StoreCorruptError, StoreSchemaError
from flightlog.lineage import handoff_edges, infer_data_edges, inferred_edge
from flightlog.model import Batch, Edge, Finding, Run, RunRecord, Step
from flightlog.status import OUTCOME_FIELDS, apply_closed_status, apply_derived_status
from flightlog.store._columns import (
    FINDING_COLUMNS,
    FINDINGS,
    RUN_COLUMNS,
    RUNS,
    STEP_COLUMNS,
    _err_in,
    finding_from_row,
    finding_row,
    run_from_row,
    run_row,
    step_from_row,
    step_row,
)
from flightlog.store.base import Migration, RunQuery, StepOutline, Tx, WriteHook, chunked
from flightlog.store.facts import (
    CLOSED_IDLE,
    CONFLICT_KIND,
    Conflict,
    conflict_finding,
    conflict_record,
    merge_run,
    merge_step,
)
from flightlog.store.schema import MIGRATIONS_TABLE


# Runs and steps are written as their merged state (``flightlog.store.facts`` decides what a
# re-sent record may change), so the upserts simply store the row they are given.
def _upsert(table: str, columns: str, key: str, keep: tuple[str, ...]) -> str:
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(columns.split(', ')))}) "
        f"ON CONFLICT ({key}) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in columns.split(", ") if c not in keep)
    )


# ``project`` is never updated: a run stays in the project that first stored it.
_RUN_UPSERT = _upsert("runs", RUN_COLUMNS, "id", ("id", "project"))
_STEP_UPSERT = _upsert("steps", STEP_COLUMNS, "run_id, id", ("run_id", "id"))
# Partitioned tables (PostgreSQL, ``store/_pgpart.py``): the partition key ``part_day`` is
# the last column and part of the key; it is a function of the run id (never updated).
_PART = ", part_day"
_RUN_UPSERT_PART = _upsert("runs", RUN_COLUMNS + _PART, "id" + _PART, ("id", "project", "part_day"))
_STEP_UPSERT_PART = _upsert(
    "steps", STEP_COLUMNS + _PART, "run_id, id" + _PART, ("run_id", "id", "part_day")
)
_PAYLOAD_INSERT = (
    "INSERT INTO payloads (hash, data, size, truncated) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (hash) DO NOTHING"
)
_FINDING_INSERT = (
    f"INSERT INTO findings ({FINDING_COLUMNS}) VALUES ({FINDINGS.placeholders()}) "
    "ON CONFLICT (id) DO NOTHING"
)

_T = TypeVar("_T")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")  # a capability table or column name


_OUTLINE_COLUMNS = (
    "run_id, id, parent_id, idx, status, started_ns, ended_ns, input_hash, output_hash, agent, "
    "attributes"
)

# Runs whose steps take their agent from their nearest ancestor with one (OpenTelemetry
# conventions name the agent on the agent span only; the SDK names it on every step).
INHERITING_SOURCES = frozenset({"otlp"})


def inherit_agents(steps: Sequence[Step]) -> None:
    """Give each step without an agent the agent of its nearest ancestor that has one.

    Derived when read, never stored: the stored agent is the fact the span carried, the one the
    audit ledger logged, so a parent span that arrives late changes what readers see without
    contradicting the ledger.
    """
    by_id = {s.id: s for s in steps}
    for s in steps:
        if s.agent is not None:
            continue
        p = by_id.get(s.parent_id or "")
        hops = 0
        while p is not None and hops < 1000:
            if p.agent is not None:
                s.agent = p.agent
                break
            p = by_id.get(p.parent_id or "")
            hops += 1


def rank_by_start(steps: Iterable[tuple[str, int]]) -> dict[str, int]:
    """``{step id: index}``: the 1-based rank of each step's start time (ties by id)."""
    ranked = sorted(steps, key=lambda p: (p[1], p[0]))
    return {sid: i for i, (sid, _) in enumerate(ranked, 1)}


def reorder_steps(tx: Tx, run_id: str) -> None:
    """Recompute a run's step indices from start times (derived state: never logged)."""
    reorder_runs_steps(tx, [run_id])


def reorder_runs_steps(tx: Tx, run_ids: Sequence[str]) -> None:
    """``reorder_steps`` for many runs: one read per 500 runs, one update of the steps
    whose index changed (in (run, step) order), instead of a round trip per run."""
    by_run: dict[str, list[tuple[str, int, int]]] = {}
    for part in chunked(sorted(set(run_ids)), 500):
        marks = ", ".join("?" * len(part))
        for run_id, step_id, started_ns, idx in tx.fetchall(
            f"SELECT run_id, id, started_ns, idx FROM steps WHERE run_id IN ({marks})", part
        ):
            by_run.setdefault(run_id, []).append((step_id, started_ns, idx))
    _update_indices(tx, by_run)


def _update_indices(tx: Tx, by_run: dict[str, list[tuple[str, int, int]]]) -> None:
    changed = []
    for run_id in sorted(by_run):
        rows = by_run[run_id]
        ranks = rank_by_start((r[0], r[1]) for r in rows)
        changed += [(ranks[r[0]], run_id, r[0]) for r in sorted(rows) if ranks[r[0]] != r[2]]
    if changed:
        tx.executemany("UPDATE steps SET idx = ? WHERE run_id = ? AND id = ?", changed)


class _StepFacts:
    """What an ingested run's outcome is derived from, of one stored step
    (``flightlog.status.StepFacts``, plus the error it ended with)."""

    __slots__ = (
        "attributes",
        "ended_ns",
        "error",
        "id",
        "kind",
        "parent_id",
        "started_ns",
        "status",
    )

    def __init__(self, row: Sequence[Any]) -> None:
        (
            _,
            self.id,
            self.parent_id,
            self.kind,
            self.status,
            self.started_ns,
            self.ended_ns,
            _,
            error,
            attributes,
        ) = row
        self.error = None if error is None else _err_in(error)
        # Only a handled exception (an ``exception`` event on a step that ended OK) is read
        # from the attributes: most steps' JSON is never decoded.
        self.attributes = (
            _json.loads(attributes) or {} if attributes and '"exception"' in attributes else {}
        )


def _outline(row: Sequence[Any]) -> StepOutline:
    """A ``StepOutline`` from a row of ``_OUTLINE_COLUMNS``."""
    return StepOutline(
        run_id=row[0],
        id=row[1],
        parent_id=row[2],
        index=row[3],
        status=row[4],
        started_ns=row[5],
        ended_ns=row[6],
        input_hash=row[7],
        output_hash=row[8],
        agent=row[9],
        attributes=_json.loads(row[10]) or {},
    )


_SETTLE_STEP_COLUMNS = (
    "run_id, id, parent_id, kind, status, started_ns, ended_ns, idx, error, attributes"
)
_OUTCOME_UPDATE = (
    "UPDATE runs SET status = ?, failed_step_id = ?, reason = ?, error = ? WHERE id = ?"
)
_OUTCOME_AT = tuple(RUNS.names.index(c) for c in (*OUTCOME_FIELDS, "id"))


class _Outcome:
    """A stored run's outcome and what ``apply_derived_status`` reads to derive it afresh
    (``ended_ns``, ``status``): the outcome fields of the run's record, without the record,
    and whether the server closed it without its root span (``CLOSED_IDLE``)."""

    __slots__ = ("closed", "ended_ns", "error", "failed_step_id", "reason", "status")

    def __init__(self, row: Sequence[Any]) -> None:
        _, _, self.status, self.ended_ns, self.failed_step_id, self.reason, error, attrs = row
        self.error = None if error is None else _err_in(error)
        self.closed = bool(attrs) and CLOSED_IDLE in attrs and _closed_idle(attrs)

    def fields(self) -> tuple[Any, ...]:
        return (self.status, self.failed_step_id, self.reason, self.error)


def _closed_idle(attributes: str) -> bool:
    value = _json.loads(attributes)
    return isinstance(value, dict) and value.get(CLOSED_IDLE) is True


# The outcome columns, in ``OUTCOME_FIELDS`` order, after the run's id, source, status and end;
# then its attributes (read for ``CLOSED_IDLE`` only)
_OUTCOME_COLUMNS = "id, source, status, ended_ns, failed_step_id, reason, error, attributes"


def settle_runs(
    tx: Tx, run_ids: Sequence[str], step_ids: dict[str, set[str]] | None = None
) -> list[Run]:
    """Inside a write, under the runs' row locks (``write_batch(lock_runs=...)``): each
    ingested run's step indices from start times, and the outcome of each one that ended
    (``flightlog.status.apply_derived_status``), from every step stored, whoever wrote it.
    Every writer of a run's steps takes the run's lock after writing them, so the last one
    sees them all: what is stored is what all stored spans imply, whichever of several
    concurrent writers (servers) commits last. One read of the steps and one of the runs'
    outcome columns per 500 runs; the whole record read and updated only for a run whose
    outcome changed. Returns those runs, as stored now (the ledger logs them).
    ``step_ids``: when given, filled with the ids of each run's stored steps (read here
    anyway; ``relineage`` needs them)."""
    ids = sorted(set(run_ids))
    steps: dict[str, list[_StepFacts]] = {}
    order: dict[str, list[tuple[str, int, int]]] = {}
    outcomes: dict[str, _Outcome] = {}
    for part in chunked(ids, 500):
        marks = ", ".join("?" * len(part))
        for row in tx.fetchall(
            f"SELECT {_SETTLE_STEP_COLUMNS} FROM steps WHERE run_id IN ({marks})", part
        ):
            order.setdefault(row[0], []).append((row[1], row[5], row[7]))
            steps.setdefault(row[0], []).append(_StepFacts(row))
            if step_ids is not None:
                step_ids.setdefault(row[0], set()).add(row[1])
        for row in tx.fetchall(f"SELECT {_OUTCOME_COLUMNS} FROM runs WHERE id IN ({marks})", part):
            # not a recorder's run (its outcome is a fact), nor one still open
            if row[1] in INHERITING_SOURCES and row[2] != "running":
                outcomes[row[0]] = _Outcome(row)
    _update_indices(tx, order)
    derived: dict[str, _Outcome] = {}
    for run_id in ids:
        outcome = outcomes.get(run_id)
        if outcome is None:
            continue  # not stored yet, a recorder's run, or open
        before = outcome.fields()
        if outcome.closed:  # closed without its root span: still without it
            apply_closed_status(outcome, steps.get(run_id, []))  # type: ignore[arg-type]
        else:
            apply_derived_status(outcome, steps.get(run_id, []))  # type: ignore[arg-type]
        if outcome.fields() != before:
            derived[run_id] = outcome
    if not derived:
        return []
    stored = _stored_runs(tx, list(derived))
    changed = [
        dataclasses.replace(
            stored[rid],
            **dict(zip(OUTCOME_FIELDS, derived[rid].fields(), strict=True)),
        )
        for rid in sorted(derived)
    ]
    tx.executemany(_OUTCOME_UPDATE, [itemgetter(*_OUTCOME_AT)(run_row(r)) for r in changed])
    return changed


def relineage(
    tx: Tx,
    batch: Batch,
    lineage: Mapping[str, Collection[str]],
    edges: list[Edge],
    stored_ids: Mapping[str, set[str]],
) -> list[Edge]:
    """The batch's edges, with the lineage of each run whose writer inferred it over fewer
    steps than are stored now inferred again over every stored step: its data edges
    (``flightlog.lineage.infer_data_edges``) that touch the batch's steps, and its hand-offs
    (``handoff_edges``: every one of the run, as ``server.ingest.derive`` links them), as
    one writer receiving all the spans in commit order would have inferred them; the
    batch's inferred edges of that run are replaced by these (the edges its spans declared,
    span links, stay: ``flightlog.lineage.inferred_edge``). Another writer
    (server) may have stored steps of the run after this one read them and before it took
    the run's lock; the last of them to commit sees every step, so no edge between their
    spans is lost, whichever got which span. ``stored_ids``: the ids of each run's steps
    stored now, read under its lock (``settle_runs``); a run whose inference saw every
    stored step (one server) costs no read, and its edges are the batch's as sent."""
    stale = {rid for rid, seen in lineage.items() if not stored_ids.get(rid, set()) <= set(seen)}
    if not stale:
        return edges
    outlines: dict[str, list[StepOutline]] = {}
    for part in chunked(sorted(stale), 500):
        marks = ", ".join("?" * len(part))
        for row in tx.fetchall(
            f"SELECT {_OUTLINE_COLUMNS} FROM steps WHERE run_id IN ({marks})", part
        ):
            o = _outline(row)
            outlines.setdefault(o.run_id, []).append(o)
    data = {p.hash: p.data for p in batch.payloads}
    wanted = sorted(
        {
            h
            for steps in outlines.values()
            for o in steps
            for h in (o.input_hash, o.output_hash)
            if h and h not in data
        }
    )
    for part in chunked(wanted, 500):
        marks = ", ".join("?" * len(part))
        for h, blob in tx.fetchall(
            f"SELECT hash, data FROM payloads WHERE hash IN ({marks})", list(part)
        ):
            data[h] = bytes(blob)
    fresh: dict[str, set[str]] = {}
    for s in batch.steps:
        if s.run_id in stale:
            fresh.setdefault(s.run_id, set()).add(s.id)
    out = [e for e in edges if e.run_id not in stale or not inferred_edge(e)]
    for run_id in sorted(stale):
        steps = outlines.get(run_id, [])
        if run_id in fresh:
            out.extend(infer_data_edges(steps, data, fresh[run_id]))
        out.extend(handoff_edges(steps))
    return out


def _stored_runs(tx: Tx, ids: Sequence[str], for_update: str = "") -> dict[str, Run]:
    out: dict[str, Run] = {}
    for part in chunked(sorted(set(ids)), 500):
        marks = ", ".join("?" * len(part))
        for row in tx.fetchall(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE id IN ({marks}) ORDER BY id{for_update}", part
        ):
            out[row[0]] = run_from_row(row)
    return out


def _stored_steps(
    tx: Tx, keys: Iterable[tuple[str, str]], for_update: str = ""
) -> dict[tuple[str, str], Step]:
    by_run: dict[str, set[str]] = {}
    for run_id, step_id in keys:
        by_run.setdefault(run_id, set()).add(step_id)
    out: dict[tuple[str, str], Step] = {}
    for run_id in sorted(by_run):
        for part in chunked(sorted(by_run[run_id]), 500):
            marks = ", ".join("?" * len(part))
            for row in tx.fetchall(
                f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ? AND id IN ({marks}) "
                f"ORDER BY id{for_update}",
                [run_id, *part],
            ):
                out[(row[0], row[1])] = step_from_row(row)
    return out


def _insert_new(
    tx: Tx,
    table: str,
    columns: str,
    key: str,
    rows: Sequence[Sequence[Any]],
    conflict: str | None = None,
) -> set[tuple[Any, ...]] | None:
    """Insert ``rows`` (each key once, in key order) unless their key is stored; the keys
    inserted, or None when every row was inserted. No read first: rows a concurrent writer
    is inserting are waited for, then skipped. ``conflict``: the unique key to test when it
    is not ``key`` (a partitioned table's).

    SQLite: the one-row statement for every row inside a savepoint (``Tx.insert_all``);
    when some key was stored already, the savepoint is rolled back and one multi-row
    statement per 500 rows says which keys it inserted (``RETURNING``). PostgreSQL:
    ``executemany_returning``, one statement for all rows (``postgres._PgTx``)."""
    if not rows:
        return set()
    width = len(rows[0])
    one = "(" + ", ".join("?" * width) + ")"
    tail = f"ON CONFLICT ({conflict or key}) DO NOTHING"
    insert_all = getattr(tx, "insert_all", None)
    if insert_all is not None and insert_all(
        f"INSERT INTO {table} ({columns}) VALUES {one} {tail}", rows
    ):
        return None
    tail += f" RETURNING {key}"
    done: set[tuple[Any, ...]] = set()
    many = getattr(tx, "executemany_returning", None)
    if many is not None:  # PostgreSQL: one statement for all rows (binary column arrays)
        sql = f"INSERT INTO {table} ({columns}) VALUES {one} {tail}"
        done.update(tuple(r) for r in many(sql, rows))
        return done
    for part in chunked(rows, 500):
        sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(part))} {tail}"
        done.update(tuple(r) for r in tx.fetchall(sql, [v for row in part for v in row]))
    return done


_K = Any  # a record's key: (run_id, step_id) for steps, the id for runs
_first = itemgetter(0)


def _fold(
    current: Any, sent: Sequence[tuple[int, Any]], merge: Callable[[Any, Any], Any]
) -> tuple[Any, bool, list[tuple[int, Conflict]]]:
    """Apply the batch's records of one key, in batch order, to ``current`` (None: not
    stored): (the state after, whether it changed, the conflicts with their batch
    positions)."""
    changed = False
    conflicts: list[tuple[int, Conflict]] = []
    for i, record in sent:
        if current is None:
            current, changed = record, True
            continue
        new, conflict = merge(current, record)
        if conflict is not None:
            conflicts.append((i, conflict))
        if new is not None:
            current, changed = new, True
    return current, changed, conflicts


def _write_facts(
    tx: Tx,
    records: Sequence[Any],
    *,
    key: Callable[[Any], _K],
    merge: Callable[[Any, Any], Any],
    insert: Callable[[Sequence[tuple[_K, Any]]], set[_K] | None],
    stored: Callable[[Sequence[_K]], dict[_K, Any]],
    upsert: Callable[[Sequence[Any]], None],
) -> tuple[list[Any], list[tuple[int, Conflict]]]:
    """Runs or steps, insert-first: what the batch says of keys not yet stored is inserted
    without reading; keys already stored are read (locked, on PostgreSQL), merged
    (``store.facts``) and updated. Rows go to the database in key order, so concurrent
    writers take row locks in one order. Returns the changed records (as stored now, in
    batch order) and the conflicts with their batch positions.

    When the batch names each key once (a recorder's batch: every step is new), nothing
    is folded: the records are inserted as they are, and when every one was new they are
    the result, in batch order, without a per-record bookkeeping."""
    by_key: dict[_K, list[tuple[int, Any]]]
    fresh: dict[_K, tuple[Any, bool, list[tuple[int, Conflict]]]]
    once = {key(r): r for r in records}
    if len(once) == len(records):
        inserted = insert(sorted(once.items(), key=_first))
        if inserted is None or len(inserted) == len(once):
            return list(records), []
        by_key = {k: [(i, r)] for i, (k, r) in enumerate(once.items())}
        fresh = {k: (r, True, []) for k, r in once.items()}
    else:
        by_key = {}
        for i, r in enumerate(records):
            by_key.setdefault(key(r), []).append((i, r))
        fresh = {k: _fold(None, sent, merge) for k, sent in by_key.items()}
        inserted = insert(sorted(((k, fresh[k][0]) for k in by_key), key=_first))
        if inserted is None:
            inserted = set(by_key)
    result: dict[_K, tuple[Any, bool, list[tuple[int, Conflict]]]] = {k: fresh[k] for k in inserted}
    rest = [k for k in by_key if k not in inserted]
    if rest:
        current = stored(rest)
        updates = []
        for k in sorted(rest):
            state, changed, conflicts = _fold(current.get(k), by_key[k], merge)
            result[k] = (state, changed, conflicts)
            if changed:
                updates.append(state)
        if updates:
            upsert(updates)
    changed_records = [result[k][0] for k in by_key if result[k][1]]
    conflicts = [c for k in by_key for c in result[k][2]]
    return changed_records, sorted(conflicts, key=lambda ic: ic[0])


def write_batch(
    tx: Tx,
    batch: Batch,
    *,
    for_update: str = "",
    lock_runs: Iterable[str] = (),
    days: dict[str, int] | None = None,
) -> tuple[Batch, list[Conflict]]:
    """Insert a batch's records through ``tx``.

    Returns what was applied (the runs and steps whose stored state changed, as now stored,
    and the other records of the batch) and the conflicts: records contradicting stored
    facts, which are not written (``flightlog.store.facts``). Re-sending what is stored
    changes nothing.

    Safe with concurrent writers (PostgreSQL, ``for_update=" FOR UPDATE"``): nothing new is
    read before it is written, stored rows are locked before they are merged, and every
    table is written in key order (payloads, steps, runs, edges, findings), so two writers
    wait for each other only on the same records and never deadlock over them. The runs in
    ``lock_runs`` are locked too (``settle_runs`` then derives their step order and outcome
    in this transaction); a sent outcome of theirs is not applied.

    ``days``: the partition day of every run of the batch (its runs' and its steps' run
    ids) when ``runs`` and ``steps`` are partitioned (PostgreSQL, ``store/_pgpart.py``).
    """
    applied = Batch(payloads=batch.payloads)
    part = "" if days is None else _PART

    def step_rows(steps: Iterable[Step]) -> list[Any]:
        if days is None:
            return [step_row(s) for s in steps]
        return [(*step_row(s), days[s.run_id]) for s in steps]

    def run_rows(runs: Iterable[Run]) -> list[Any]:
        if days is None:
            return [run_row(r) for r in runs]
        return [(*run_row(r), days[r.id]) for r in runs]

    step_upsert, run_upsert = (
        (_STEP_UPSERT, _RUN_UPSERT) if days is None else (_STEP_UPSERT_PART, _RUN_UPSERT_PART)
    )
    if batch.payloads:
        payloads: dict[str, tuple[Any, ...]] = {}
        for p in batch.payloads:
            payloads.setdefault(p.hash, (p.hash, p.data, p.size, 1 if p.truncated else 0))
        tx.executemany(_PAYLOAD_INSERT, [payloads[h] for h in sorted(payloads)])
    step_conflicts: list[tuple[int, Conflict]] = []
    if batch.steps:
        applied.steps, step_conflicts = _write_facts(
            tx,
            batch.steps,
            key=lambda s: (s.run_id, s.id),
            merge=merge_step,
            insert=lambda kv: _insert_new(
                tx,
                "steps",
                STEP_COLUMNS + part,
                "run_id, id",
                step_rows(s for _, s in kv),
                "run_id, id" + part,
            ),
            stored=lambda keys: _stored_steps(tx, keys, for_update),
            upsert=lambda steps: tx.executemany(step_upsert, step_rows(steps)),
        )
    refused_runs = {c.run_id for _, c in step_conflicts if c.step_id is not None}
    settle = set(lock_runs)  # their outcome is derived by ``settle_runs`` afterwards
    run_conflicts: list[tuple[int, Conflict]] = []
    # Runs to reorder without a record in this batch: locked with the batch's stored runs,
    # in one pass in id order, or on their own when every run of the batch is new.
    extra = sorted(set(lock_runs) - {r.id for r in batch.runs})
    extra_found: set[str] | None = None  # None: not locked yet

    def stored_runs(ids: Sequence[str]) -> dict[str, Run]:
        nonlocal extra_found
        rows = _stored_runs(tx, [*ids, *extra], for_update)
        extra_found = {rid for rid in extra if rid in rows}
        return rows

    if batch.runs:
        applied.runs, run_conflicts = _write_facts(
            tx,
            batch.runs,
            key=lambda r: r.id,
            merge=lambda cur, r: merge_run(
                cur, r, steps_refused=r.id in refused_runs, settled=r.id in settle
            ),
            insert=lambda kv: _ids(
                _insert_new(
                    tx, "runs", RUN_COLUMNS + part, "id", run_rows(r for _, r in kv), "id" + part
                )
            ),
            stored=stored_runs,
            upsert=lambda runs: tx.executemany(run_upsert, run_rows(runs)),
        )
    if extra and for_update:
        if extra_found is None:
            extra_found = set(_stored_runs(tx, extra, for_update))
        for rid in extra:
            if rid not in extra_found:  # steps without their run: a named lock stands in
                tx.lock(f"run:{rid}")
    if batch.edges:
        applied.edges = _insert_edges(tx, batch.edges)
    if batch.findings:
        applied.findings = _insert_findings(tx, batch.findings)
    conflicts = [c for _, c in step_conflicts] + [c for _, c in run_conflicts]
    return applied, conflicts


def _insert_edges(tx: Tx, sent: Sequence[Edge]) -> list[Edge]:
    """Insert the edges not stored yet (one per key, the first sent); returns those
    inserted, as inserted."""
    edges: dict[tuple[str, str, str, str], Edge] = {}
    for e in sent:
        edges.setdefault((e.run_id, e.source, e.target, e.kind), e)
    new = _insert_new(
        tx,
        "edges",
        "run_id, source, target, kind, evidence, detail",
        "run_id, source, target, kind",
        [(*k, edges[k].evidence, edges[k].detail) for k in sorted(edges)],
    )
    return list(edges.values()) if new is None else [e for k, e in edges.items() if k in new]


def _insert_findings(tx: Tx, findings: Sequence[Finding]) -> list[Finding]:
    """Insert the findings not stored yet (first of each id); those inserted, in order."""
    by_id: dict[str, Finding] = {}
    for f in findings:
        by_id.setdefault(f.id, f)
    new = _insert_new(
        tx, "findings", FINDING_COLUMNS, "id", [finding_row(by_id[k]) for k in sorted(by_id)]
    )
    if new is None:
        return list(by_id.values())
    return [f for k, f in by_id.items() if (k,) in new]


def _ids(keys: set[tuple[Any, ...]] | None) -> set[Any] | None:
    """One-column keys as their values (None: every row was inserted)."""
    return None if keys is None else {k[0] for k in keys}


class SQLStore:
    """Record operations over ``transaction()``/``read()``; subclasses supply those."""

    url: str
    dialect: str
    concurrent_writers: bool = False

    def __init__(self) -> None:
        self._write_hooks: list[WriteHook] = []
        self._auditors: list[Any] = []
        self._close_hooks: list[Callable[[], None]] = []

    @property
    def display_url(self) -> str:
        """The URL as shown in messages (the PostgreSQL store hides the password)."""
        return self.url

    # Provided by subclasses.
    def transaction(self) -> AbstractContextManager[Tx]:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self) -> AbstractContextManager[Tx]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_write(self, fn: Any) -> Any:
        with self.transaction() as tx:
            return fn(tx)

    def run_write(self, fn: Callable[[Tx], _T]) -> _T:
        """``fn(tx)`` in a write transaction, run again from the start when the database
        aborts it as a deadlock or a serialization failure (PostgreSQL; as ``write``
        does). For maintenance (redaction, retention, ledger integration, checkpoints):
        ``fn`` must leave nothing behind outside the transaction that a re-run would
        repeat wrongly."""
        result: _T = self._run_write(fn)
        return result

    def _partition_days(self, batch: Batch) -> Callable[[Tx], dict[str, int]] | None:
        """For stores whose runs and steps are partitioned (PostgreSQL): called before a
        write's transaction (makes the partitions it needs), returns ``days(tx)``, the
        partition day of each of the batch's runs, for ``write_batch``. None: unpartitioned."""
        return None

    def _run_migration(self, fn: Any) -> Any:
        """``fn(tx)`` in a write transaction that no other migration runs beside (the
        PostgreSQL store adds its store-wide lock; SQLite writers are one at a time)."""
        return self._run_write(fn)

    # -- migrations ----------------------------------------------------------------------
    def migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        if getattr(self, "readonly", False):
            # Read commands never write: a store that is current needs nothing; one written
            # by an older Flightlog (or without this component) says so instead of changing.
            wanted = max((m.version for m in migrations), default=0)
            have = self.schema_version(component) if self._has_migrations_table() else 0
            if have < wanted:
                raise StoreSchemaError(
                    f"{self.display_url} has no {component} tables at the version this "
                    f"Flightlog reads ({component} schema v{have}, needs v{wanted}) and is "
                    "opened read-only, so it is not migrated: open it once with a writing "
                    "command (flightlog watch --once, flightlog serve) or read it with the "
                    "Flightlog that wrote it",
                    component=component,
                    have=have,
                )
            return

        def apply(tx: Tx) -> None:
            tx.execute(MIGRATIONS_TABLE)
            row = tx.fetchone(
                "SELECT MAX(version) FROM schema_migrations WHERE component = ?", (component,)
            )
            current = row[0] if row and row[0] is not None else 0
            for m in sorted(migrations, key=lambda m: m.version):
                if m.version <= current:
                    continue
                for stmt in m.statements:
                    tx.execute(stmt)
                tx.execute(
                    "INSERT INTO schema_migrations (component, version, description, applied_ns)"
                    " VALUES (?, ?, ?, ?)",
                    (component, m.version, m.description, time.time_ns()),
                )

        self._run_migration(apply)

    def _has_migrations_table(self) -> bool:
        try:
            with self.read() as tx:
                tx.fetchall("SELECT 1 FROM schema_migrations LIMIT 0")
        except StoreCorruptError:
            raise
        except Exception:  # no such table: nothing was ever migrated here
            return False
        return True

    def schema_version(self, component: str) -> int:
        with self.read() as tx:
            row = tx.fetchone(
                "SELECT MAX(version) FROM schema_migrations WHERE component = ?", (component,)
            )
        return int(row[0]) if row and row[0] is not None else 0

    # -- writing -------------------------------------------------------------------------
    def add_write_hook(self, hook: WriteHook) -> None:
        if hook not in self._write_hooks:
            self._write_hooks.append(hook)

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` once when the store is closed, before its connections are (the
        ledger signs the entries this process appended last)."""
        if hook not in self._close_hooks:
            self._close_hooks.append(hook)

    def _run_close_hooks(self) -> None:
        hooks, self._close_hooks = self._close_hooks, []
        for hook in hooks:
            with suppress(Exception):  # closing must not fail over derived work
                hook()

    def add_auditor(self, auditor: Any) -> None:
        """Attach ``auditor(tx, kind, data)``; the audit ledger attaches itself here."""
        if auditor not in self._auditors:
            self._auditors.append(auditor)

    def audit(self, tx: Tx, kind: str, data: dict[str, Any]) -> None:
        """Append a record of ``kind`` (e.g. ``incident.transition``) to the audit ledger,
        inside the caller's transaction. A no-op when no ledger is attached."""
        for auditor in self._auditors:
            auditor(tx, kind, data)

    def write(
        self,
        batch: Batch,
        *,
        reorder: Iterable[str] = (),
        rederived: list[str] | None = None,
        lineage: Mapping[str, Collection[str]] | None = None,
    ) -> list[Conflict]:
        reorder = sorted(set(reorder))
        if lineage:
            locked = set(reorder)
            lineage = {rid: ids for rid, ids in lineage.items() if rid in locked}
        if not len(batch) and not reorder:
            return []

        for_update = " FOR UPDATE" if self.concurrent_writers else ""
        days_of = self._partition_days(batch)
        settled: list[Run] = []

        def apply(tx: Tx) -> list[Conflict]:
            days = None if days_of is None else days_of(tx)
            # With ``lineage``, edges (and findings, after them: tables in one order) are
            # written after the runs' step ids are read under their locks (``relineage``).
            core = dataclasses.replace(batch, edges=[], findings=[]) if lineage else batch
            applied, conflicts = write_batch(
                tx, core, for_update=for_update, lock_runs=reorder, days=days
            )
            stored_ids: dict[str, set[str]] | None = {} if lineage else None
            # under the runs' locks
            settled[:] = settle_runs(tx, reorder, stored_ids) if reorder else []
            if lineage and stored_ids is not None:
                edges = relineage(tx, batch, lineage, batch.edges, stored_ids)
                if edges:
                    applied.edges = _insert_edges(tx, edges)
                if batch.findings:
                    applied.findings = _insert_findings(tx, batch.findings)
            if settled:  # hooks (the ledger) get each run once, as it is stored now
                by_id = {r.id: r for r in settled}
                applied.runs = [by_id.pop(r.id, r) for r in applied.runs] + list(by_id.values())
            if conflicts:
                now = time.time_ns()
                found = [conflict_finding(c, now) for c in conflicts]
                tx.executemany(
                    _FINDING_INSERT, [finding_row(f) for f in sorted(found, key=lambda f: f.id)]
                )
                applied.findings = [*applied.findings, *found]
                for c in conflicts:
                    self.audit(tx, CONFLICT_KIND, conflict_record(c, now))
            for hook in self._write_hooks:
                hook(tx, applied)
            return conflicts

        result: list[Conflict] = self._run_write(apply)
        if rederived is not None:
            rederived.extend(r.id for r in settled)
        return result

    def step_outlines(self, run_ids: Iterable[str]) -> dict[str, list[StepOutline]]:
        wanted = sorted(set(run_ids))
        out: dict[str, list[StepOutline]] = {}
        with self.read() as tx:
            for part in chunked(wanted, 500):
                marks = ", ".join("?" * len(part))
                for row in tx.fetchall(
                    f"SELECT {_OUTLINE_COLUMNS} FROM steps WHERE run_id IN ({marks})", list(part)
                ):
                    o = _outline(row)
                    out.setdefault(o.run_id, []).append(o)
        return out

    def existing_runs(self, run_ids: Iterable[str]) -> set[str]:
        wanted = sorted(set(run_ids))
        found: set[str] = set()
        with self.read() as tx:
            for part in chunked(wanted, 500):
                marks = ", ".join("?" * len(part))
                found.update(
                    r[0]
                    for r in tx.fetchall(f"SELECT id FROM runs WHERE id IN ({marks})", list(part))
                )
        return found

    def ended_runs(
        self, *, since_ns: int = 0, limit: int = 1000, unmarked_in: tuple[str, str] | None = None
    ) -> list[str]:
        sql = (
            "SELECT id FROM runs WHERE status IN ('failed', 'degraded', 'succeeded') "
            "AND source <> 'replay' AND ended_ns >= ?"
        )
        if unmarked_in is not None:
            table, column = unmarked_in
            for name in unmarked_in:
                if not _IDENTIFIER.fullmatch(name):
                    raise ValueError(f"ended_runs: {name!r} is not a table or column name")
            sql += f" AND NOT EXISTS (SELECT 1 FROM {table} m WHERE m.{column} = runs.id)"
        with self.read() as tx:
            rows = tx.fetchall(sql + " ORDER BY ended_ns, id LIMIT ?", (since_ns, max(0, limit)))
        return [str(r[0]) for r in rows]

    # -- reading -------------------------------------------------------------------------
    def _run_where(self, q: RunQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if q.workflow:
            clauses.append("workflow = ?")
            params.append(q.workflow)
        if q.status:
            clauses.append("status = ?")
            params.append(q.status)
        if q.owner:
            clauses.append("owner = ?")
            params.append(q.owner)
        if q.project is not None:
            clauses.append("project = ?")
            params.append(q.project)
        if q.since_ns is not None:
            clauses.append("started_ns >= ?")
            params.append(q.since_ns)
        if q.until_ns is not None:
            clauses.append("started_ns < ?")
            params.append(q.until_ns)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return where, params

    def list_runs(self, query: RunQuery | None = None) -> list[Run]:
        q = query or RunQuery()
        where, params = self._run_where(q)
        sql = f"SELECT {RUN_COLUMNS} FROM runs{where} ORDER BY started_ns DESC, id LIMIT ? OFFSET ?"
        with self.read() as tx:
            rows = tx.fetchall(sql, [*params, max(0, q.limit), max(0, q.offset)])
        return [run_from_row(r) for r in rows]

    def count_runs(self, query: RunQuery | None = None) -> int:
        where, params = self._run_where(query or RunQuery())
        with self.read() as tx:
            row = tx.fetchone(f"SELECT COUNT(*) FROM runs{where}", params)
        return int(row[0]) if row else 0

    def get_run(self, run_id: str) -> Run | None:
        with self.read() as tx:
            row = tx.fetchone(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        return run_from_row(row) if row else None

    def resolve_run_id(self, prefix: str, *, project: str | None = None) -> str:
        prefix = (prefix or "").strip().lower()
        if not prefix:
            raise NotFoundError("no run id given")
        if any(c not in "0123456789abcdef" for c in prefix):
            raise NotFoundError(f"{prefix!r} is not a run id (run ids are 32 hex digits)")
        scoped = "" if project is None else " AND project = ?"
        with self.read() as tx:
            rows = tx.fetchall(
                f"SELECT id FROM runs WHERE id >= ? AND id < ?{scoped} ORDER BY id LIMIT 2",
                (prefix, prefix + "g") if project is None else (prefix, prefix + "g", project),
            )
        if not rows:
            raise NotFoundError(f"no run with id {prefix!r} in {self.display_url}")
        if len(rows) > 1:
            raise NotFoundError(f"run id prefix {prefix!r} is ambiguous; give more digits")
        return str(rows[0][0])

    def get_steps(self, run_id: str) -> list[Step]:
        with self.read() as tx:
            rows = tx.fetchall(
                f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY idx, started_ns",
                (run_id,),
            )
            source = tx.fetchone("SELECT source FROM runs WHERE id = ?", (run_id,))
        steps = [step_from_row(r) for r in rows]
        if source is not None and source[0] in INHERITING_SOURCES:
            inherit_agents(steps)
        return steps

    def get_edges(self, run_id: str) -> list[Edge]:
        with self.read() as tx:
            rows = tx.fetchall(
                "SELECT run_id, source, target, kind, evidence, detail FROM edges "
                "WHERE run_id = ? ORDER BY source, target",
                (run_id,),
            )
        return [Edge(*r) for r in rows]

    def get_findings(self, run_id: str) -> list[Finding]:
        with self.read() as tx:
            rows = tx.fetchall(
                f"SELECT {FINDING_COLUMNS} FROM findings WHERE run_id = ? ORDER BY created_ns, id",
                (run_id,),
            )
        return [finding_from_row(r) for r in rows]

    def get_record(self, run_id: str) -> RunRecord:
        run = self.get_run(run_id)
        if run is None:
            raise NotFoundError(f"no run with id {run_id!r} in {self.display_url}")
        return RunRecord(
            run=run,
            steps=self.get_steps(run_id),
            edges=self.get_edges(run_id),
            findings=self.get_findings(run_id),
        )

    def get_payloads(self, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = sorted({h for h in hashes if h})
        out: dict[str, bytes] = {}
        with self.read() as tx:
            for part in chunked(wanted, 500):
                marks = ", ".join("?" * len(part))
                for h, data in tx.fetchall(
                    f"SELECT hash, data FROM payloads WHERE hash IN ({marks})", list(part)
                ):
                    out[h] = bytes(data)
        return out

    def report_drops(self, recorder: str, service: str | None, dropped: int) -> None:
        """Record that the recorder process ``recorder`` has dropped ``dropped`` records so far."""
        now = time.time_ns()

        def apply(tx: Tx) -> None:
            tx.execute(
                "INSERT INTO recorder_drops (recorder, service, dropped, first_ns, last_ns) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (recorder) DO UPDATE SET "
                "dropped = excluded.dropped, last_ns = excluded.last_ns",
                (recorder, service, dropped, now, now),
            )

        self._run_write(apply)

    def dropped_records(self) -> int:
        """How many records recorders have reported dropping, in total."""
        with self.read() as tx:
            row = tx.fetchone("SELECT COALESCE(SUM(dropped), 0) FROM recorder_drops")
        return int(row[0]) if row else 0

    def workflows(self, *, project: str | None = None) -> list[str]:
        with self.read() as tx:
            if project is None:
                rows = tx.fetchall("SELECT DISTINCT workflow FROM runs ORDER BY workflow")
            else:
                rows = tx.fetchall(
                    "SELECT DISTINCT workflow FROM runs WHERE project = ? ORDER BY workflow",
                    (project,),
                )
        return [r[0] for r in rows]
