"""Screening a decoded OTLP request before it is queued for the store.

``claim_runs`` stamps the runs of a request with the sending key's project and rejects
(OTLP partial success) the spans of traces that already belong to another project: an
ingest key of project B cannot add steps to, or change the status of, a run of project A
by re-using its trace id.
"""

from __future__ import annotations

from typing import Any

from flightlog.otel.decode import MAX_ERRORS_REPORTED, DecodeResult
from flightlog.store.base import chunked


def _foreign(store: Any, run_ids: list[str], project: str) -> set[str]:
    found: set[str] = set()
    with store.read() as tx:
        for part in chunked(run_ids, 500):
            marks = ", ".join("?" * len(part))
            found.update(
                str(r[0])
                for r in tx.fetchall(
                    f"SELECT id FROM runs WHERE project <> ? AND id IN ({marks})",
                    [project, *part],
                )
            )
    return found


def claim_runs(store: Any, result: DecodeResult, project: str) -> None:
    """Stamp ``result``'s runs with ``project``; reject the spans of other projects' runs."""
    batch = result.batch
    run_ids = sorted({r.id for r in batch.runs} | {s.run_id for s in batch.steps})
    taken = _foreign(store, run_ids, project) if run_ids else set()
    for run in batch.runs:
        run.project = project
    if not taken:
        return
    dropped = sum(1 for s in batch.steps if s.run_id in taken) + sum(
        1
        for r in batch.runs
        if r.id in taken and r.id not in result.placeholder_runs and r.source != "otlp"
    )
    dropped = min(dropped, result.accepted_spans)
    batch.runs = [r for r in batch.runs if r.id not in taken]
    batch.steps = [s for s in batch.steps if s.run_id not in taken]
    batch.edges = [e for e in batch.edges if e.run_id not in taken]
    batch.findings = [f for f in batch.findings if f.run_id not in taken]
    result.ended_runs = [r for r in result.ended_runs if r not in taken]
    result.placeholder_runs -= taken
    result.inferred_runs -= taken
    result.accepted_spans -= dropped
    result.rejected_spans += dropped
    for run_id in sorted(taken):
        if len(result.errors) < MAX_ERRORS_REPORTED:
            result.errors.append(
                f"trace {run_id}: belongs to another project; its spans were rejected"
            )
