"""The ingestion queue: one bounded queue, one writer thread, acknowledgement after commit.

Requests decode their spans on their own and ``submit`` the result; the writer thread takes
everything waiting (up to ``max_batch_spans``), writes it to the store in one transaction and
then resolves each request's future, so an acknowledgement always means "durable", and the
store sees few large transactions instead of many small ones. When more than
``max_pending_spans`` spans are waiting, ``submit`` raises ``Overloaded`` (the endpoint
answers 429 with Retry-After) instead of buffering without bound.

Inside the write transaction, a write hook orders the steps of ingested (non-Flightlog) runs
by start time and infers their data edges from payload content (``flightlog.otel.lineage``).
After the commit, runs whose root span arrived are handed to
``flightlog.pipeline.runs_ended`` on a separate thread, off the request path.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from flightlog.model import Batch, Run
from flightlog.otel.decode import DecodeResult
from flightlog.otel.lineage import infer_data_edges, order
from flightlog.store.base import Tx, chunked

log = logging.getLogger("flightlog.server")

PIPELINE_MAX_DEFER = 2.0

_EDGE_INSERT = (
    "INSERT INTO edges (run_id, source, target, kind, evidence, detail) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, source, target, kind) DO NOTHING"
)


class Overloaded(Exception):
    """The ingestion queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__("ingestion queue is full")
        self.retry_after = retry_after


class Unavailable(Exception):
    """The server is shutting down, or the store cannot be written."""


@dataclass
class _Item:
    result: DecodeResult
    spans: int
    future: Future[None] = field(default_factory=Future)


@dataclass
class IngestStats:
    requests: int = 0
    spans_stored: int = 0
    spans_rejected: int = 0
    transactions: int = 0
    write_errors: int = 0
    overloaded: int = 0
    pipeline_errors: int = 0
    decode_seconds: float = 0.0
    write_seconds: float = 0.0
    pipeline_seconds: float = 0.0


class Ingestor:
    """Writes decoded OTLP requests to a store, batched across requests."""

    def __init__(
        self, store: Any, *, max_pending_spans: int = 50_000, max_batch_spans: int = 20_000
    ) -> None:
        self.store = store
        self.max_pending_spans = max_pending_spans
        self.max_batch_spans = max_batch_spans
        self.stats = IngestStats()
        self._items: deque[_Item] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closing = False
        self._current: Batch | None = None
        self._current_inferred: set[str] = set()
        self._current_new: set[str] = set()
        store.add_write_hook(self._write_hook)
        self._ended: queue.Queue[list[str] | None] = queue.Queue()
        self._writer = threading.Thread(
            target=self._write_loop, name="flightlog-ingest", daemon=True
        )
        self._pipeline = threading.Thread(
            target=self._pipeline_loop, name="flightlog-pipeline", daemon=True
        )
        self._writer.start()
        self._pipeline.start()

    # -- the request side ---------------------------------------------------------------
    @property
    def pending_spans(self) -> int:
        return self._pending

    def alive(self) -> bool:
        return self._writer.is_alive() and not self._closing

    def submit(self, result: DecodeResult) -> Future[None]:
        """Queue a decoded request; the future resolves once it is committed."""
        spans = max(1, result.accepted_spans)
        with self._cond:
            if self._closing:
                raise Unavailable("the server is shutting down")
            if self._pending and self._pending + spans > self.max_pending_spans:
                self.stats.overloaded += 1
                raise Overloaded(retry_after=1)
            item = _Item(result=result, spans=spans)
            self._items.append(item)
            self._pending += spans
            self.stats.requests += 1
            self._cond.notify()
        return item.future

    def close(self, timeout: float = 30.0, pipeline_timeout: float = 5.0) -> None:
        """Stop accepting, write what is queued, stop the threads.

        Run-end hooks still waiting after ``pipeline_timeout`` seconds are abandoned (they are
        derived work: ``flightlog detect`` can redo them); stored spans never are.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._writer.join(timeout)
        self._ended.put(None)
        self._pipeline.join(pipeline_timeout)
        if self._pipeline.is_alive():
            log.warning("run-end hooks still running at shutdown; abandoned")

    # -- the writer thread --------------------------------------------------------------
    def _take(self) -> list[_Item]:
        with self._cond:
            while not self._items and not self._closing:
                self._cond.wait(0.5)
            taken: list[_Item] = []
            spans = 0
            while self._items and (
                not taken or spans + self._items[0].spans <= self.max_batch_spans
            ):
                item = self._items.popleft()
                taken.append(item)
                spans += item.spans
            return taken

    def _write_loop(self) -> None:
        while True:
            items = self._take()
            if not items:
                if self._closing:
                    return
                continue
            started = time.perf_counter()
            try:
                # One request's bad record must not fail the requests batched with it: when a
                # shared transaction fails, each request is written (and answered) on its own.
                groups = [items]
                try:
                    ended = self._write(items)
                except Exception:
                    if len(items) == 1:
                        raise
                    groups = [[item] for item in items]
                    ended = []
                for group in groups if len(groups) > 1 else []:
                    try:
                        ended += self._write(group)
                    except Exception as exc:
                        self.stats.write_errors += 1
                        log.exception("writing a request failed")
                        group[0].future.set_exception(
                            Unavailable(f"the store could not be written: {exc}")
                        )
            except Exception as exc:  # the store failed: every waiting request gets a 503
                self.stats.write_errors += 1
                log.exception("writing %d request(s) failed", len(items))
                for item in items:
                    item.future.set_exception(Unavailable(f"the store could not be written: {exc}"))
            else:
                for item in items:
                    if not item.future.done():
                        item.future.set_result(None)
                if ended:
                    self._ended.put(ended)
            finally:
                self.stats.write_seconds += time.perf_counter() - started
                with self._cond:
                    self._pending -= sum(i.spans for i in items)

    def _write(self, items: list[_Item]) -> list[str]:
        batch = Batch()
        placeholders: dict[str, Run] = {}
        real_runs: set[str] = set()
        inferred: set[str] = set()
        ended: list[str] = []
        for item in items:
            r = item.result
            for run in r.batch.runs:
                if run.id in r.placeholder_runs:
                    prev = placeholders.get(run.id)
                    if prev is None or run.started_ns < prev.started_ns:
                        placeholders[run.id] = run
                else:
                    real_runs.add(run.id)
                    batch.runs.append(run)
            batch.steps.extend(r.batch.steps)
            batch.edges.extend(r.batch.edges)
            batch.payloads.extend(r.batch.payloads)
            batch.findings.extend(r.batch.findings)
            inferred |= r.inferred_runs
            ended.extend(r.ended_runs)
        wanted = [rid for rid in placeholders if rid not in real_runs]
        if wanted:
            existing = self._existing("runs", "id", wanted)
            batch.runs.extend(placeholders[rid] for rid in wanted if rid not in existing)
        # Ingested runs with steps already stored are reordered and linked in SQL inside the
        # write transaction (the hook); runs seen for the first time, here in memory.
        stored = self._existing("steps", "run_id", sorted(inferred)) if inferred else set()
        fresh = inferred - stored
        if fresh:
            postprocess_in_memory(batch, fresh)
        self._current = batch
        self._current_inferred = stored
        self._current_new = {s.id for s in batch.steps if s.run_id in stored}
        try:
            self.store.write(batch)
        finally:
            self._current = None
        self.stats.transactions += 1
        self.stats.spans_stored += sum(i.result.accepted_spans for i in items)
        self.stats.spans_rejected += sum(i.result.rejected_spans for i in items)
        return list(dict.fromkeys(ended))

    def _existing(self, table: str, column: str, run_ids: list[str]) -> set[str]:
        """Which of ``run_ids`` appear in ``table.column`` already."""
        found: set[str] = set()
        with self.store.read() as tx:
            for part in chunked(run_ids, 500):
                marks = ", ".join("?" * len(part))
                found.update(
                    r[0]
                    for r in tx.fetchall(
                        f"SELECT DISTINCT {column} FROM {table} WHERE {column} IN ({marks})",
                        list(part),
                    )
                )
        return found

    def _write_hook(self, tx: Tx, batch: Batch) -> None:
        if batch is not self._current or not self._current_inferred:
            return
        for run_id in sorted(self._current_inferred):
            postprocess_run(tx, run_id, self._current_new)

    # -- the pipeline thread ------------------------------------------------------------
    def _pipeline_loop(self) -> None:
        from flightlog import pipeline

        while True:
            run_ids = self._ended.get()
            if run_ids is None or self._closing:
                return
            # Ingestion first: while spans are waiting to be written, let them (up to
            # PIPELINE_MAX_DEFER seconds), then run the hooks once for every run that ended.
            deferred = time.monotonic() + PIPELINE_MAX_DEFER
            while self._pending and time.monotonic() < deferred and not self._closing:
                time.sleep(0.02)
            while True:
                try:
                    more = self._ended.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._ended.put(None)
                    break
                run_ids.extend(more)
            run_ids = list(dict.fromkeys(run_ids))
            started = time.monotonic()
            try:
                pipeline.runs_ended(self.store, run_ids)
            except Exception:  # runs_ended never raises; belt and braces
                self.stats.pipeline_errors += 1
                log.exception("run-end pipeline failed")
            self.stats.pipeline_seconds += time.monotonic() - started


@dataclass
class _StepRow:
    run_id: str
    id: str
    started_ns: int
    ended_ns: int | None
    idx: int
    input_hash: str | None
    output_hash: str | None
    parent_id: str | None
    agent: str | None


def _inherit_agents(rows: list[Any]) -> list[tuple[Any, str]]:
    """(row, agent) for rows without an agent whose nearest ancestor with one has it."""
    by_id = {r.id: r for r in rows}
    out: list[tuple[Any, str]] = []
    for r in rows:
        if r.agent is not None:
            continue
        p = by_id.get(r.parent_id or "")
        hops = 0
        while p is not None and hops < 1000:
            if p.agent is not None:
                out.append((r, p.agent))
                break
            p = by_id.get(p.parent_id or "")
            hops += 1
    return out


def postprocess_in_memory(batch: Batch, run_ids: set[str]) -> None:
    """Order, agents and inferred data edges for runs whose every stored step is in
    ``batch`` (none stored before): the same result as ``postprocess_run``, without SQL."""
    by_run: dict[str, dict[str, Any]] = {}
    copies: dict[str, list[Any]] = {}
    for s in batch.steps:
        if s.run_id in run_ids:
            by_run.setdefault(s.run_id, {})[s.id] = s  # a span delivered twice: last wins
            copies.setdefault(s.run_id, []).append(s)
    data = {p.hash: p.data for p in batch.payloads}
    for run_id, steps in by_run.items():
        ranks = order((s.id, s.started_ns) for s in steps.values())
        inherited = {r.id: agent for r, agent in _inherit_agents(list(steps.values()))}
        for s in copies[run_id]:
            s.index = ranks[s.id]
            if s.agent is None and s.id in inherited:
                s.agent = inherited[s.id]
        batch.edges.extend(infer_data_edges(list(steps.values()), data))


def postprocess_run(tx: Tx, run_id: str, new_ids: set[str]) -> None:
    """Recompute a run's step order, give agent-less steps the agent of their nearest
    ancestor that has one, and infer data edges touching ``new_ids``."""
    rows = [
        _StepRow(run_id, *r)
        for r in tx.fetchall(
            "SELECT id, started_ns, ended_ns, idx, input_hash, output_hash, parent_id, agent "
            "FROM steps WHERE run_id = ?",
            (run_id,),
        )
    ]
    ranks = order((r.id, r.started_ns) for r in rows)
    changed = [(ranks[r.id], run_id, r.id) for r in rows if ranks[r.id] != r.idx]
    if changed:
        tx.executemany("UPDATE steps SET idx = ? WHERE run_id = ? AND id = ?", changed)
    run = tx.fetchone("SELECT status, failed_step_id FROM runs WHERE id = ?", (run_id,))
    if run is not None and run[0] == "failed":
        # The failure point: the earliest-ending errored step, wherever it arrived from.
        err = tx.fetchone(
            "SELECT id FROM steps WHERE run_id = ? AND status = 'error' "
            "ORDER BY COALESCE(ended_ns, started_ns), started_ns DESC LIMIT 1",
            (run_id,),
        )
        if err is not None and err[0] != run[1]:
            tx.execute("UPDATE runs SET failed_step_id = ? WHERE id = ?", (err[0], run_id))
    agents = [(agent, run_id, r.id) for r, agent in _inherit_agents(rows)]
    if agents:
        tx.executemany("UPDATE steps SET agent = ? WHERE run_id = ? AND id = ?", agents)
    hashes = sorted({h for r in rows for h in (r.input_hash, r.output_hash) if h})
    data: dict[str, bytes] = {}
    for part in chunked(hashes, 500):
        marks = ", ".join("?" * len(part))
        for h, d in tx.fetchall(
            f"SELECT hash, data FROM payloads WHERE hash IN ({marks})", list(part)
        ):
            data[h] = bytes(d)
    edges = infer_data_edges(rows, data, new_ids)
    if edges:
        tx.executemany(
            _EDGE_INSERT,
            [(e.run_id, e.source, e.target, e.kind, e.evidence, e.detail) for e in edges],
        )
