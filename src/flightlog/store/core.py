"""Reads and changes of the core tables inside a caller's transaction.

The core tables (runs, steps, edges, payloads, findings) belong to the store: no other
package writes SQL against them. Capabilities that must read or change them atomically with
their own tables (the ledger's redaction and retention, the response engine's SLO incidents)
or that need a question the record methods of ``Store`` do not answer (which project a run is
in, who owns anything, how a workflow's runs ended) call these functions with the ``Tx`` of
``store.read()`` or ``store.transaction()``. Portable SQL with ``?`` placeholders, as
everywhere in the store.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from flightlog.model import Edge, Finding, Run, RunRecord
from flightlog.store.base import Tx, chunked

__all__ = [
    "REDACTABLE",
    "delete_payload",
    "delete_run",
    "delete_runs_started_before",
    "ended_ns",
    "latest_run",
    "latest_step_kind",
    "latest_step_kind_owner",
    "owners",
    "payload_in_project",
    "payload_referenced_elsewhere",
    "payload_references",
    "payloads",
    "payloads_by_hash",
    "record_keys",
    "records",
    "redactable_rows",
    "run_projects",
    "runs_started_before",
    "status_counts",
    "update_record",
]


# -- projects ------------------------------------------------------------------------------
def run_projects(tx: Tx, run_ids: Iterable[str]) -> dict[str, str]:
    """The project of each stored run among ``run_ids`` (runs not stored are absent)."""
    wanted = sorted({r for r in run_ids if r})
    out: dict[str, str] = {}
    for part in chunked(wanted, 500):
        marks = ", ".join("?" * len(part))
        for rid, project in tx.fetchall(
            f"SELECT id, project FROM runs WHERE id IN ({marks})", list(part)
        ):
            out[str(rid)] = str(project)
    return out


def payload_in_project(tx: Tx, payload_hash: str, project: str) -> bool:
    """Whether a run of ``project``, or one of its steps, references the payload."""
    row = tx.fetchone(
        "SELECT 1 FROM runs WHERE project = ? AND (input_hash = ? OR output_hash = ?) "
        "UNION ALL SELECT 1 FROM steps s JOIN runs r ON r.id = s.run_id "
        "WHERE r.project = ? AND (s.input_hash = ? OR s.output_hash = ?) LIMIT 1",
        (project, payload_hash, payload_hash, project, payload_hash, payload_hash),
    )
    return row is not None


# -- owners and outcomes -------------------------------------------------------------------
def owners(tx: Tx) -> set[str]:
    """Every owner recorded on a run or a step."""
    return {
        str(r[0])
        for r in tx.fetchall(
            "SELECT DISTINCT owner FROM steps WHERE owner IS NOT NULL UNION "
            "SELECT DISTINCT owner FROM runs WHERE owner IS NOT NULL"
        )
    }


def status_counts(tx: Tx, workflow: str, since_ns: int, until_ns: int) -> dict[str, int]:
    """How many runs of ``workflow`` started in [``since_ns``, ``until_ns``) ended with each
    status; replays (``source = 'replay'``) are not outcomes and are left out."""
    rows = tx.fetchall(
        "SELECT status, count(*) FROM runs WHERE workflow = ? AND started_ns >= ? "
        "AND started_ns < ? AND source <> 'replay' GROUP BY status",
        (workflow, since_ns, until_ns),
    )
    return {str(s): int(n) for s, n in rows}


def latest_run(tx: Tx, workflow: str, statuses: Sequence[str], before_ns: int) -> str | None:
    """The id of the latest run of ``workflow`` started before ``before_ns`` with one of
    ``statuses``, or None."""
    marks = ", ".join("?" * len(statuses))
    row = tx.fetchone(
        f"SELECT id FROM runs WHERE workflow = ? AND status IN ({marks}) "
        "AND started_ns < ? ORDER BY started_ns DESC LIMIT 1",
        (workflow, *statuses, before_ns),
    )
    return str(row[0]) if row else None


def latest_step_kind(tx: Tx, workflow: str, step: str, before_ns: int) -> str | None:
    """The kind step ``step`` of ``workflow`` was last recorded with before ``before_ns``."""
    return latest_step_kind_owner(tx, workflow, step, before_ns)[0]


def latest_step_kind_owner(
    tx: Tx, workflow: str, step: str, before_ns: int
) -> tuple[str | None, str | None]:
    """The kind and the owner (given in code; None without one) step ``step`` of
    ``workflow`` was last recorded with before ``before_ns``."""
    row = tx.fetchone(
        "SELECT s.kind, s.owner FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.workflow = ? "
        "AND s.name = ? AND r.started_ns < ? ORDER BY r.started_ns DESC LIMIT 1",
        (workflow, step, before_ns),
    )
    if not row:
        return None, None
    return (str(row[0]) if row[0] else None), (str(row[1]) if row[1] else None)


def ended_ns(tx: Tx, run_ids: Iterable[str]) -> dict[str, int | None]:
    """When each stored run among ``run_ids`` ended (None: not yet)."""
    wanted = sorted({r for r in run_ids if r})
    out: dict[str, int | None] = {}
    for part in chunked(wanted, 500):
        marks = ", ".join("?" * len(part))
        for rid, ended in tx.fetchall(
            f"SELECT id, ended_ns FROM runs WHERE id IN ({marks})", list(part)
        ):
            out[str(rid)] = None if ended is None else int(ended)
    return out


# -- records in bulk (the run-end pipeline) -------------------------------------------------
def records(
    tx: Tx, run_ids: Iterable[str], *, payloads: dict[str, bytes] | None = None
) -> dict[str, RunRecord]:
    """The stored records among ``run_ids`` as ``Store.get_record`` returns each (steps in
    index order with ingested runs' agents inherited, edges by source and target, findings
    oldest first), read with a few queries per 500 runs instead of five reads per run.
    ``payloads``: a dict filled with the stored payloads of the steps' inputs and outputs (as
    ``payloads_by_hash`` reads them), read in the steps' query (no second query, and no
    row of its own per payload)."""
    from flightlog.store._columns import (
        FINDING_COLUMNS,
        RUN_COLUMNS,
        STEP_COLUMNS,
        STEPS,
        finding_from_row,
        run_from_row,
        step_from_row,
    )
    from flightlog.store._sql import INHERITING_SOURCES, inherit_agents

    steps_sql, step_of = f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id", step_from_row
    if payloads is not None:
        steps_sql = (
            f"SELECT {', '.join('s.' + c for c in STEPS.names)}, i.data, o.data FROM steps s "
            "LEFT JOIN payloads i ON i.hash = s.input_hash "
            "LEFT JOIN payloads o ON o.hash = s.output_hash WHERE s.run_id"
        )
        into = payloads

        def step_of(row: Any) -> Any:
            step = step_from_row(row)  # the step's columns come first
            i, o = step.input_hash, step.output_hash
            if i is not None and row[-2] is not None:
                into[i] = bytes(row[-2])
            if o is not None and row[-1] is not None:
                into[o] = bytes(row[-1])
            return step

    out: dict[str, RunRecord] = {}
    for part in chunked(sorted({r for r in run_ids if r}), 500):
        marks = ", ".join("?" * len(part))
        for row in tx.fetchall(f"SELECT {RUN_COLUMNS} FROM runs WHERE id IN ({marks})", part):
            run = run_from_row(row)
            out[run.id] = RunRecord(run=run, steps=[], edges=[], findings=[])
        parts: tuple[tuple[str, Callable[[Any], Any], str], ...] = (
            (
                # In key order (no sort of whole rows, payloads included, in a temporary
                # B-tree); put in index order below, ties in this order of their ids.
                f"{steps_sql} IN ({marks}) ORDER BY run_id, id",
                step_of,
                "steps",
            ),
            (
                "SELECT run_id, source, target, kind, evidence, detail FROM edges "
                f"WHERE run_id IN ({marks}) ORDER BY run_id, source, target, kind",
                lambda row: Edge(*row),
                "edges",
            ),
            (
                f"SELECT {FINDING_COLUMNS} FROM findings WHERE run_id IN ({marks}) "
                "ORDER BY run_id, created_ns, id",
                finding_from_row,
                "findings",
            ),
        )
        for sql, convert, field in parts:
            for row in tx.fetchall(sql, part):
                item = convert(row)
                rec = out.get(item.run_id)
                if rec is not None:
                    getattr(rec, field).append(item)
    for rec in out.values():
        if len(rec.steps) > 1:  # (index, start, id): the stable sort keeps the ids' order
            rec.steps.sort(key=_INDEX_ORDER)
        if rec.run.source in INHERITING_SOURCES:
            inherit_agents(rec.steps)
    return out


_INDEX_ORDER = operator.attrgetter("index", "started_ns")


def payloads_by_hash(tx: Tx, hashes: Iterable[str]) -> dict[str, bytes]:
    """Canonical JSON bytes of the stored payloads among ``hashes`` (as ``get_payloads``)."""
    out: dict[str, bytes] = {}
    for part in chunked(sorted({h for h in hashes if h}), 500):
        marks = ", ".join("?" * len(part))
        for h, data in tx.fetchall(
            f"SELECT hash, data FROM payloads WHERE hash IN ({marks})", list(part)
        ):
            out[str(h)] = bytes(data)
    return out


# -- redaction and retention (the ledger) --------------------------------------------------
# The columns of each record a redaction may clear; the key columns come first.
REDACTABLE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "runs": (("id",), ("input_hash", "output_hash", "reason", "error", "attributes")),
    "steps": (("run_id", "id"), ("input_hash", "output_hash", "error", "attributes")),
    "findings": (("id",), ("message", "evidence")),
}


def redactable_rows(tx: Tx, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """The run's stored run, steps and findings, each as {column: value} of its key and
    redactable columns (``REDACTABLE``); no ``runs`` row when the run is not stored."""
    out: dict[str, list[dict[str, Any]]] = {}
    for table, by in (("runs", "id"), ("steps", "run_id"), ("findings", "run_id")):
        keys, values = REDACTABLE[table]
        columns = (*keys, *values)
        out[table] = [
            dict(zip(columns, row, strict=True))
            for row in tx.fetchall(
                f"SELECT {', '.join(columns)} FROM {table} WHERE {by} = ?", (run_id,)
            )
        ]
    return out


def update_record(tx: Tx, table: str, key: dict[str, Any], changed: dict[str, Any]) -> None:
    """Set redactable columns of one record (``key``: its key columns and values)."""
    keys, values = REDACTABLE[table]
    if set(key) != set(keys) or not set(changed) <= set(values):
        raise ValueError(f"{table}: key {sorted(key)} / columns {sorted(changed)} not redactable")
    if not changed:
        return
    sets = ", ".join(f"{c} = ?" for c in changed)
    where = " AND ".join(f"{k} = ?" for k in keys)
    tx.execute(
        f"UPDATE {table} SET {sets} WHERE {where}",
        [*changed.values(), *(key[k] for k in keys)],
    )


def payload_referenced_elsewhere(tx: Tx, payload_hash: str, run_id: str) -> bool:
    """Whether a run other than ``run_id``, or one of its steps, references the payload."""
    row = tx.fetchone(
        "SELECT 1 FROM steps WHERE (input_hash = ? OR output_hash = ?) AND run_id <> ? "
        "UNION ALL "
        "SELECT 1 FROM runs WHERE (input_hash = ? OR output_hash = ?) AND id <> ?",
        (payload_hash, payload_hash, run_id, payload_hash, payload_hash, run_id),
    )
    return row is not None


def delete_payload(tx: Tx, payload_hash: str) -> None:
    tx.execute("DELETE FROM payloads WHERE hash = ?", (payload_hash,))


def runs_started_before(tx: Tx, before_ns: int) -> list[str]:
    """Ids of the runs that started before ``before_ns``."""
    return [
        str(r[0]) for r in tx.fetchall("SELECT id FROM runs WHERE started_ns < ?", (before_ns,))
    ]


def delete_runs_started_before(tx: Tx, before_ns: int) -> tuple[list[str], int]:
    """Retention: delete the runs that started before ``before_ns`` with their steps, edges
    and findings. Where runs and steps are partitioned by time (PostgreSQL), the partitions
    wholly before the cut-off are dropped at the end of the transaction (after the row work
    here and the caller's); the rest is deleted row by row. Returns the ids of every run
    whose records are deleted (also runs known only by their steps, in a dropped partition)
    and how many stored runs that is."""
    drop = getattr(tx, "drop_partitions_before", None)
    ids, count = drop(before_ns) if drop is not None else ([], 0)
    dropped = set(ids)
    rest = [r for r in runs_started_before(tx, before_ns) if r not in dropped]
    for run_id in rest:
        delete_run(tx, run_id)
    return sorted({*ids, *rest}), count + len(rest)


def record_keys(tx: Tx, run_id: str) -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    """The run's step ids, finding ids and data/handoff edges (source, target, kind)."""
    steps = [str(r[0]) for r in tx.fetchall("SELECT id FROM steps WHERE run_id = ?", (run_id,))]
    findings = [
        str(r[0]) for r in tx.fetchall("SELECT id FROM findings WHERE run_id = ?", (run_id,))
    ]
    edges = [
        (str(s), str(t), str(k))
        for s, t, k in tx.fetchall(
            "SELECT source, target, kind FROM edges WHERE run_id = ?", (run_id,)
        )
    ]
    return steps, findings, edges


def delete_run(tx: Tx, run_id: str) -> None:
    """Delete the run and its steps, edges and findings (payloads are shared: kept), and
    where runs are partitioned by time (PostgreSQL) its ``run_days`` row."""
    for table, column in (
        ("steps", "run_id"),
        ("edges", "run_id"),
        ("findings", "run_id"),
        ("runs", "id"),
    ):
        tx.execute(f"DELETE FROM {table} WHERE {column} = ?", (run_id,))
    forget = getattr(tx, "forget_run_day", None)
    if forget is not None:
        forget(run_id)


# -- audit coverage (ledger.coverage) ------------------------------------------------------------
def payloads(tx: Tx) -> list[tuple[str, bytes]]:
    """Every stored payload: (address, bytes)."""
    return [(str(h), bytes(data)) for h, data in tx.fetchall("SELECT hash, data FROM payloads")]


def payload_references(tx: Tx) -> list[tuple[str, str | None, str | None, str | None]]:
    """(run id, step id or None for the run itself, input address, output address) of every
    run and step that refers to a payload."""
    rows = tx.fetchall(
        "SELECT id, NULL, input_hash, output_hash FROM runs "
        "WHERE input_hash IS NOT NULL OR output_hash IS NOT NULL "
        "UNION ALL SELECT run_id, id, input_hash, output_hash FROM steps "
        "WHERE input_hash IS NOT NULL OR output_hash IS NOT NULL"
    )
    return [
        (
            str(r),
            None if s is None else str(s),
            None if i is None else str(i),
            None if o is None else str(o),
        )
        for r, s, i, o in rows
    ]


def failed_among(tx: Tx, run_ids: Iterable[str]) -> int:
    """How many of ``run_ids`` are stored as failed: one query per 500 runs (``flightlog
    serve``'s activity line, for every run that ended in its interval)."""
    n = 0
    for part in chunked(sorted(set(run_ids)), 500):
        marks = ", ".join("?" * len(part))
        row = tx.fetchone(
            f"SELECT COUNT(*) FROM runs WHERE status = 'failed' AND id IN ({marks})", part
        )
        n += int(row[0]) if row else 0
    return n


def runs_by_id(tx: Tx, ids: Iterable[str]) -> dict[str, Run]:
    """The stored runs among ``ids`` (the audit ledger's write hook: a run's entry records the
    run as stored, merged with what was there)."""
    from flightlog.store._columns import RUN_COLUMNS, run_from_row

    out = {}
    for part in chunked(sorted(ids), 500):
        marks = ", ".join("?" * len(part))
        for row in tx.fetchall(f"SELECT {RUN_COLUMNS} FROM runs WHERE id IN ({marks})", part):
            out[row[0]] = run_from_row(row)
    return out


def findings_by_id(tx: Tx, ids: Iterable[str]) -> dict[str, Finding]:
    """The stored findings among ``ids``."""
    from flightlog.store._columns import FINDING_COLUMNS, finding_from_row

    out = {}
    for part in chunked(sorted(ids), 500):
        marks = ", ".join("?" * len(part))
        for row in tx.fetchall(
            f"SELECT {FINDING_COLUMNS} FROM findings WHERE id IN ({marks})", part
        ):
            f = finding_from_row(row)
            out[f.id] = f
    return out
