"""The ingestion queue: one bounded queue, one writer thread, acknowledgement after commit.

Requests decode their spans on their own and ``submit`` the result; the writer thread takes
everything waiting (up to ``max_batch_spans``), writes it to the store in one transaction and
then resolves each request's future, so an acknowledgement always means "durable", and the
store sees few large transactions instead of many small ones. When more than
``max_pending_spans`` spans are waiting, ``submit`` raises ``Overloaded`` (the endpoint
answers 429 with Retry-After) instead of buffering without bound.

Before the write, the data edges that new spans of ingested (non-Flightlog) runs open with the
run's stored spans are inferred from payload content (``flightlog.lineage``), and the
hand-offs between agents they declare are linked (``late_handoffs``), and added to the
batch, so the audit ledger logs them; in the same transaction, under each run's row lock,
the store reorders the run's steps by start time and derives the run's outcome from every
stored span (so with several servers writing one trace, the last to commit sees them all),
and infers the run's data edges and hand-offs again over every stored span when another
server stored spans of it after ``derive`` read them (``Store.write(lineage=...)``): the
edges stored do not depend on which server got which span. Nothing logged
is rewritten later: a late span adds facts; a changed outcome is logged anew, and the other
things derived from all of them (order, inherited agents) are not logged (see ``derive``).
After the commit, runs whose root span arrived are handed to
``flightlog.pipeline.runs_ended`` by a separate thread, off the request path: on that thread
(``run_end = "thread"``), or in the run-end worker process (``run_end = "process"``,
``flightlog.server.runend_worker``), at most ``RUN_END_BATCH`` runs per call.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from flightlog.lineage import handoff_edges, infer_data_edges
from flightlog.model import Batch, Run, Step
from flightlog.otel.conventions import OI_GRAPH_NODE_ID, OI_GRAPH_NODE_PARENT_ID
from flightlog.otel.decode import DecodeResult
from flightlog.server.runend_worker import RunEndInThread, RunEndReport
from flightlog.status import failure_point
from flightlog.store.base import StepOutline, Store
from flightlog.store.facts import CLOSED_IDLE, PLACEHOLDER, Conflict

log = logging.getLogger("flightlog.server")

PIPELINE_MAX_DEFER = 2.0
# The interpreter's switch interval in ``flightlog serve`` (``sys.setswitchinterval``; Python's
# default is 5 ms). The writer thread is the server's serial stage, and it lets go of the GIL
# at every SQLite call (each row of an ``executemany``): a request thread decoding a body
# takes it then, and keeps it until asked to drop it after the switch interval. 1 ms bounds
# what the writer waits each time (docs/benchmarks.md).
SWITCH_INTERVAL_S = 0.001
# The cyclic garbage collector's thresholds in ``flightlog serve``, set once the app is built,
# after everything it loaded is frozen out of the collector's sight (``gc.freeze``). Decoded
# batches waiting in the queue are many young objects and no cycles to speak of: with
# Python's 700 a young collection ran every few spans and walked them (about 11 µs of the
# main process's CPU per span, 6 with these; docs/benchmarks.md). Only while serving.
GC_THRESHOLDS = (10_000, 10, 10)
# Runs per call of ``pipeline.runs_ended``: what a call holds in memory (each run's record,
# payloads and findings until the batch's response work is done) grows with it.
RUN_END_BATCH = 500


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
    future: Future[list[Conflict]] = field(default_factory=Future)


@dataclass
class IngestStats:
    requests: int = 0
    spans_stored: int = 0
    spans_rejected: int = 0
    transactions: int = 0
    write_errors: int = 0
    overloaded: int = 0
    # Errors of run-end work: each stage, work or hook that raised (as the run-end work
    # reports them), plus one per batch of ended runs abandoned (run_end_batches_abandoned)
    pipeline_errors: int = 0
    idle_closed: int = 0
    decode_seconds: float = 0.0
    write_seconds: float = 0.0
    pipeline_seconds: float = 0.0
    # CPU time of the writer and run-end threads (where the server's CPU goes, whatever else
    # runs on the machine)
    write_cpu_seconds: float = 0.0
    pipeline_cpu_seconds: float = 0.0
    # Where run-end work runs ("thread" or "process"), the worker's pid, how often it was
    # restarted, and the whole worker process's CPU (with its periodic work)
    run_end_mode: str = "thread"
    run_end_worker_pid: int | None = None
    run_end_worker_restarts: int = 0
    run_end_worker_cpu_seconds: float = 0.0
    # Batches of ended runs whose run-end work was abandoned (workers kept dying on the
    # batch, or the server shut down with it in hand), and the runs in them; and why the
    # worker is failing, if it is
    run_end_batches_abandoned: int = 0
    run_end_runs_abandoned: int = 0
    run_end_worker_failing: str | None = None
    # Seconds the writer and the run-end worker waited for SQLite's write lock (held by the
    # other; 0 on PostgreSQL)
    write_lock_wait_seconds: float = 0.0
    pipeline_lock_wait_seconds: float = 0.0


class Ingestor:
    """Writes decoded OTLP requests to a store, batched across requests."""

    def __init__(
        self,
        store: Store,
        *,
        max_pending_spans: int = 50_000,
        max_batch_spans: int = 20_000,
        privacy: Any = None,
        idle_trace_timeout: float = 0.0,
        run_end: Any = None,
    ) -> None:
        self.store = store
        # Where run-end work runs: on the pipeline thread (``RunEndInThread``, the default
        # here) or in a worker process (``runend_worker.RunEndProcess``)
        self.run_end = run_end if run_end is not None else RunEndInThread(store)
        # Called with each batch of run ids once its run-end work is done (``listen``)
        self.on_ended: list[Any] = []
        self._worker_cpu: dict[int, float] = {}
        # Seconds after the last span of a trace whose root span has not arrived before the
        # trace is closed and processed (0: never).
        self.idle_trace_timeout = idle_trace_timeout
        self._open: dict[str, float] = {}  # run id -> when its last span arrived (monotonic)
        self._idle_checked = 0.0
        if idle_trace_timeout > 0:
            self._open = dict.fromkeys(self._open_runs(), time.monotonic())
        # flightlog.privacy.Scrubber: the OTLP endpoint scrubs each request right after
        # decoding it, before it is queued here.
        self.privacy = privacy
        self.max_pending_spans = max_pending_spans
        self.max_batch_spans = max_batch_spans
        self.stats = IngestStats(run_end_mode=self.run_end.mode)
        self._items: deque[_Item] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closing = False
        self._ended: queue.Queue[list[str] | None] = queue.Queue()
        self._writer = threading.Thread(
            target=self._write_loop, name="flightlog-ingest", daemon=True
        )
        self._pipeline = threading.Thread(
            target=self._pipeline_loop, name="flightlog-pipeline", daemon=True
        )
        self.run_end.start()
        self.stats.run_end_worker_pid = self.run_end.pid
        self._writer.start()
        self._pipeline.start()

    # -- the request side ---------------------------------------------------------------
    @property
    def pending_spans(self) -> int:
        return self._pending

    def alive(self) -> bool:
        return self._writer.is_alive() and not self._closing

    def submit(self, result: DecodeResult) -> Future[list[Conflict]]:
        """Queue a decoded request; the future resolves once it is committed, to the
        conflicts among its records (rewrites of stored facts, which were not written)."""
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
        deadline = time.monotonic() + pipeline_timeout
        self._pipeline.join(pipeline_timeout)
        if self._pipeline.is_alive():
            log.warning("run-end hooks still running at shutdown; abandoned")
        self.run_end.close(max(0.0, deadline - time.monotonic()))

    # -- the writer thread --------------------------------------------------------------
    def _take(self) -> list[_Item]:
        with self._cond:
            if not self._items and not self._closing:
                self._cond.wait(0.5)  # then return, empty: idle traces are checked
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
            if self.idle_trace_timeout > 0 and not self._closing:
                self._close_idle()
            if not items:
                if self._closing:
                    return
                continue
            started = time.perf_counter()
            cpu = time.thread_time()
            try:
                # One request's bad record must not fail the requests batched with it: when a
                # shared transaction fails, each request is written (and answered) on its own.
                try:
                    ended, conflicts = self._write(items)
                except Exception:
                    if len(items) == 1:
                        raise
                    ended, conflicts = [], []
                    for item in items:
                        try:
                            one_ended, one_conflicts = self._write([item])
                        except Exception as exc:
                            self.stats.write_errors += 1
                            log.exception("writing a request failed")
                            item.future.set_exception(
                                Unavailable(f"the store could not be written: {exc}")
                            )
                            conflicts.append([])
                            continue
                        ended += one_ended
                        conflicts += one_conflicts
            except Exception as exc:  # the store failed: every waiting request gets a 503
                self.stats.write_errors += 1
                log.exception("writing %d request(s) failed", len(items))
                for item in items:
                    item.future.set_exception(Unavailable(f"the store could not be written: {exc}"))
            else:
                for item, found in zip(items, conflicts, strict=True):
                    if not item.future.done():
                        item.future.set_result(found)
                if ended:
                    self._ended.put(ended)
            finally:
                self.stats.write_seconds += time.perf_counter() - started
                self.stats.write_lock_wait_seconds = getattr(self.store, "lock_wait_seconds", 0.0)
                self.stats.write_cpu_seconds += time.thread_time() - cpu
                with self._cond:
                    self._pending -= sum(i.spans for i in items)

    def _write(self, items: list[_Item]) -> tuple[list[str], list[list[Conflict]]]:
        batch = Batch()
        placeholders: dict[str, Run] = {}
        real_runs: set[str] = set()
        inferred: set[str] = set()
        split: set[str] = set()  # ingested runs with spans in more than one of the requests
        ended: list[str] = []
        for item in items:
            r = item.result
            if r.inferred_runs:
                split |= inferred & r.inferred_runs
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
            # A stand-in never changes a stored run (store.facts): where a read costs round
            # trips (PostgreSQL) it is sent whether or not the run is stored, and the write,
            # which locks the run anyway, leaves a stored one as it is; on SQLite a read is
            # cheaper than a batch whose runs are not all new.
            existing = set() if self.store.concurrent_writers else self.store.existing_runs(wanted)
            # Marked as stand-ins: the root span's run record replaces them (store.facts).
            batch.runs.extend(
                dataclasses.replace(
                    placeholders[rid],
                    attributes={**placeholders[rid].attributes, PLACEHOLDER: True},
                )
                for rid in wanted
                if rid not in existing
            )
        lineage = derive(self.store, batch, inferred, split) if inferred else {}
        # The store derives each ingested run's outcome from all its stored spans, under
        # the run's lock (and infers its data edges again when another server stored spans
        # of it since ``derive`` read them); runs whose outcome late spans changed go
        # through run-end again.
        rederived: list[str] = []
        conflicts = self.store.write(batch, reorder=inferred, rederived=rederived, lineage=lineage)
        ended.extend(rederived)
        per_item = _conflicts_by_item(items, conflicts or [])
        rejected = sum(rejected_spans_of(c) for c in per_item)
        if self.idle_trace_timeout > 0:
            now = time.monotonic()
            for rid in real_runs:
                self._open.pop(rid, None)
            for rid in wanted:
                if rid in inferred:
                    self._open[rid] = now
        self.stats.transactions += 1
        self.stats.spans_stored += sum(i.result.accepted_spans for i in items) - rejected
        self.stats.spans_rejected += sum(i.result.rejected_spans for i in items) + rejected
        return list(dict.fromkeys(ended)), per_item

    # -- traces whose root span never came ------------------------------------------------
    def _open_runs(self) -> list[str]:
        """Ingested runs still waiting for their root span (after a restart: all of them
        count as just seen)."""
        from flightlog.store.base import RunQuery

        try:
            runs = self.store.list_runs(RunQuery(status="running", limit=100_000))
        except Exception:  # a store that cannot be read now fails the first write anyway
            log.exception("cannot list open traces")
            return []
        return [r.id for r in runs if r.source == "otlp"]

    def _close_idle(self) -> None:
        """Close the traces idle for ``idle_trace_timeout`` seconds and hand them to the
        run-end pipeline (checked at most once a second, on the writer thread, so a closing
        never races a span of the same trace being written)."""
        now = time.monotonic()
        if now - self._idle_checked < 1.0:
            return
        self._idle_checked = now
        due = [rid for rid, seen in self._open.items() if now - seen >= self.idle_trace_timeout]
        closed: list[str] = []
        for rid in due:
            self._open.pop(rid, None)
            try:
                if self.close_trace(rid):
                    closed.append(rid)
            except Exception:
                log.exception("closing idle trace %s failed", rid)
        if closed:
            self.stats.idle_closed += len(closed)
            self._ended.put(closed)

    def close_trace(self, run_id: str) -> bool:
        """End a run whose root span never arrived, from the spans that did: ``failed`` at
        its failure point when a span ended in error, else ``unknown`` (no root span, no
        outcome). The stand-in run is closed as when a root span arrives (a new ledger entry),
        marked ``CLOSED_IDLE`` so that a root span arriving later still replaces it
        (``store.facts``). False when the run ended meanwhile."""
        run = self.store.get_run(run_id)
        if run is None or run.status != "running":
            return False
        steps = self.store.step_outlines([run_id]).get(run_id, [])
        failed_step = _failure_point(steps)
        ends = [s.ended_ns or s.started_ns for s in steps]
        attributes = {k: v for k, v in run.attributes.items() if k != PLACEHOLDER}
        closed = dataclasses.replace(
            run,
            status="failed" if failed_step else "unknown",
            ended_ns=max(ends) if ends else run.started_ns,
            failed_step_id=failed_step,
            reason=f"closed after {self.idle_trace_timeout:g}s without the trace's root span",
            attributes={**attributes, CLOSED_IDLE: True},
        )
        self.store.write(Batch(runs=[closed]))
        return True

    # -- the pipeline thread ------------------------------------------------------------
    def _pipeline_loop(self) -> None:
        while True:
            try:
                run_ids = self._ended.get(timeout=1.0)
            except queue.Empty:
                self.run_end.check()  # a worker that died while idle is restarted
                continue
            if run_ids is None or self._closing:
                return
            # Ingestion first where run-end work shares its GIL: while spans are waiting to
            # be written, let them (up to PIPELINE_MAX_DEFER seconds), then run the hooks once
            # for every run that ended.
            deferred = time.monotonic() + (PIPELINE_MAX_DEFER if self.run_end.defer else 0.0)
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
            for k in range(0, len(run_ids), RUN_END_BATCH):
                if self._closing:
                    return
                self._run_end(run_ids[k : k + RUN_END_BATCH])

    def _run_end(self, run_ids: list[str]) -> None:
        try:
            report = self.run_end.run(run_ids)
        except Exception as exc:  # runs_ended never raises; a worker that kept dying can
            self.stats.pipeline_errors += 1
            self.stats.run_end_batches_abandoned += 1
            self.stats.run_end_runs_abandoned += len(run_ids)
            named = ", ".join(run_ids[:5]) + (", ..." if len(run_ids) > 5 else "")
            if self._closing:  # the worker was stopped at shutdown with this batch in hand
                log.warning(
                    "run-end work for %d run(s) abandoned at shutdown: %s", len(run_ids), named
                )
            else:
                log.error("run-end work for %d run(s) abandoned (%s): %s", len(run_ids), named, exc)
            report = RunEndReport()
        self.stats.pipeline_errors += report.errors
        self.stats.pipeline_seconds += report.seconds
        self.stats.pipeline_cpu_seconds += report.cpu_seconds
        self.stats.pipeline_lock_wait_seconds += report.lock_wait_seconds
        if report.process_cpu_seconds is not None:
            # the worker's CPU since it started, summed over the workers so far
            self._worker_cpu[self.run_end.pid or 0] = report.process_cpu_seconds
            self.stats.run_end_worker_cpu_seconds = sum(self._worker_cpu.values())
        self.stats.run_end_worker_pid = self.run_end.pid
        self.stats.run_end_worker_restarts = self.run_end.restarts
        for listener in list(self.on_ended):
            try:
                listener(run_ids)
            except Exception:
                log.exception("run-end listener failed")


def late_handoffs(
    batch: Batch,
    run_ids: set[str],
    stored: dict[str, list[StepOutline]],
    split: set[str] | None = None,
) -> None:
    """Hand-offs whose two agent spans arrived in different requests (OpenInference graph
    nodes, ``handoff_edges``; ``decode`` linked those within each request): linked over
    each run's stored spans (``stored``, as ``derive`` read them) and the batch's, for every
    run of ``run_ids`` with a graph node among the batch's spans that is stored or whose
    spans in the batch came in more than one request (``split``; None: any may have). Every
    hand-off of such a run is linked again, not only those of the batch's spans (the store
    skips those stored). Another server may store spans of the run after ``stored`` was
    read: the store links the run's hand-offs again under the run's lock then
    (``Store.write(lineage=...)``). A run's outcome is not derived here but by the store,
    inside the write, from every stored span (``Store.write(reorder=...)``)."""
    graph = {s.run_id for s in batch.steps if OI_GRAPH_NODE_PARENT_ID in s.attributes}
    graph |= {s.run_id for s in batch.steps if OI_GRAPH_NODE_ID in s.attributes}
    wanted = graph & run_ids
    if split is not None:
        wanted &= split | set(stored)
    if not wanted:
        return
    steps: dict[str, dict[str, StepOutline | Step]] = {}
    for rid in sorted(wanted):
        steps[rid] = {o.id: o for o in stored.get(rid, ())}
    for s in batch.steps:
        if s.run_id in wanted:
            have = steps[s.run_id]
            # A stored (closed) step is a fact: a re-sent span that contradicts it is refused.
            if s.id not in have or have[s.id].ended_ns is None:
                have[s.id] = s
    for rid in sorted(wanted):
        batch.edges.extend(handoff_edges(steps[rid].values()))


def _conflicts_by_item(items: list[_Item], conflicts: list[Conflict]) -> list[list[Conflict]]:
    """Each request's share of the conflicts (the requests that sent the rejected records)."""
    out: list[list[Conflict]] = [[] for _ in items]
    if not conflicts:
        return out
    owner: dict[str, int] = {}
    for n, item in enumerate(items):
        b = item.result.batch
        for r in b.runs:
            if r.id not in item.result.placeholder_runs:
                owner.setdefault(r.id, n)
        for st in b.steps:
            owner.setdefault(f"{st.run_id}/{st.id}", n)
    for c in conflicts:
        out[owner.get(c.record_id, 0)].append(c)
    return out


def rejected_spans_of(conflicts: list[Conflict]) -> int:
    """Spans rejected for these conflicts: one per step; a run record counts as a span of
    its own only when none of its steps was rejected in the same request (the root span
    carries both)."""
    steps = {c.run_id for c in conflicts if c.step_id is not None}
    return sum(1 for c in conflicts if c.step_id is not None or c.run_id not in steps)


def conflict_message(conflicts: list[Conflict], limit: int = 5) -> str:
    """An OTLP partial-success message naming the rejected records."""
    text = "; ".join(c.message() for c in conflicts[:limit])
    more = len(conflicts) - limit
    return text + (f"; and {more} more" if more > 0 else "")


def derive(
    store: Store, batch: Batch, run_ids: set[str], split: set[str] | None = None
) -> dict[str, set[str]]:
    """Before ``batch`` of ingested runs ``run_ids`` is written and logged: infer the data
    edges that its steps open with the run's stored steps, and the hand-offs
    (``late_handoffs``; ``split``: the runs whose spans came in several of the batch's
    requests, None: any may have). Returns, for each run whose lineage was inferred, the
    ids of the steps it was inferred over (``Store.write(lineage=...)``: the store infers
    the run's data edges and hand-offs again, under the run's lock, when other steps of the
    run were stored meanwhile by another server).

    Everything decided here is added to the batch, so the ledger logs it with the facts; what
    can change when later spans arrive (step order, each run's outcome) is derived by the
    store in the write transaction (``reorder``; the outcome is logged each time it
    changes) and agents inherited from ancestors by readers. Nothing stored is rewritten.
    """
    stored = store.step_outlines(run_ids)
    by_run: dict[str, dict[str, StepOutline | Step]] = {}
    for run_id, outlines in stored.items():
        by_run[run_id] = {o.id: o for o in outlines}
    new_ids: dict[str, set[str]] = {}
    for s in batch.steps:
        if s.run_id in run_ids:
            by_run.setdefault(s.run_id, {})[s.id] = s  # a span delivered twice: last wins
            new_ids.setdefault(s.run_id, set()).add(s.id)
    late_handoffs(batch, run_ids, stored, split)
    data = {p.hash: p.data for p in batch.payloads}
    wanted = {
        h
        for steps in by_run.values()
        for s in steps.values()
        for h in (s.input_hash, s.output_hash)
        if h and h not in data
    }
    if wanted:
        data.update(store.get_payloads(wanted))
    seen: dict[str, set[str]] = {}
    for run_id, steps in by_run.items():
        fresh = new_ids.get(run_id)
        if fresh:
            rows = list(steps.values())
            batch.edges.extend(
                infer_data_edges(rows, data, None if run_id not in stored else fresh)
            )
            seen[run_id] = set(steps)
    return seen


def _failure_point(steps: Sequence[StepOutline | Step]) -> str | None:
    """The earliest-ending errored step (the deepest when several end together); the
    store derives a closed run's outcome again with the same rule as late spans arrive."""
    return failure_point(steps)
