"""The background writer: the caller enqueues, one thread batches records into the sink.

The hot path is ``submit``: a ``put`` on a bounded queue. When the queue is full the caller
waits up to ``block_timeout`` seconds for room (back-pressure) and only then drops the
record, counting it. A drop is never silent: ``stats()["dropped"]`` counts it and a warning
is logged.

The worker takes whatever is queued (up to ``batch_size`` items), turns it into one
``Batch`` (hashing payloads, inferring content lineage), scrubs secrets and personal data
out of it (``flightlog.privacy``), and writes it through the sink.
When the sink fails (a locked or unavailable store) the batch is kept and retried with
backoff; nothing is dropped while the queue has room. ``flush()`` waits until everything
submitted before it is durable. After a batch that ends runs, the run-end pipeline runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flightlog import pipeline
from flightlog.model import Batch, Edge, Finding, Payload, Run, Step
from flightlog.payload import DEFAULT_CAP, make_payload
from flightlog.sdk.lineage import ContentIndex

log = logging.getLogger("flightlog")

MAX_LINEAGE_RUNS = 10_000  # runs whose outputs are kept for content lineage at once
MAX_LINEAGE_BYTES = 64 * 1024 * 1024  # memory those indexes may hold, in all


@dataclass(slots=True)
class StepDone:
    """A finished step as the caller hands it over: the record plus raw JSON snapshots."""

    step: Step
    input_json: bytes | None
    output_json: bytes | None
    identity_sources: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class RunEvent:
    """A run started or ended, with the JSON snapshots of its input / output."""

    run: Run
    input_json: bytes | None = None
    output_json: bytes | None = None
    ended: bool = False


@dataclass(slots=True)
class _FlushMarker:
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = True
    hooks: bool = True  # also wait for the run-end hooks of what came before


class Writer:
    """Bounded queue + one worker thread writing batches into a ``Sink``."""

    def __init__(
        self,
        sink: Any,
        *,
        max_queue: int = 20_000,
        batch_size: int = 1_000,
        linger: float = 0.05,
        block_timeout: float = 1.0,
        payload_cap: int = DEFAULT_CAP,
        privacy: Any = None,
    ) -> None:
        self.sink = sink
        self.privacy = privacy  # a flightlog.privacy.Scrubber: applied before the sink
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.linger = linger
        self.block_timeout = block_timeout
        self.payload_cap = payload_cap
        self.enqueued = 0
        self.written = 0
        self.dropped = 0
        self.batches = 0
        self.write_failures = 0
        self.last_error: str | None = None
        self._reported_drops = 0
        self._recorder_id = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        self._lineage: dict[str, ContentIndex] = {}
        self._lineage_bytes = 0
        self._lost_since_marker = False
        self._in_flight = 0
        self.max_hook_batches = 10_000
        self.hooks_skipped = 0
        self._closed = False
        self._start()

    def _start(self) -> None:
        # A deque: append and popleft are atomic under the GIL and far cheaper than
        # queue.Queue's lock and condition. The worker sleeps on an Event that the
        # producer sets when it finds the deque empty.
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flightlog-writer", daemon=True)
        self._thread.start()
        # Run-end hooks (detection, alerting) run on their own thread so that they never
        # hold up writing; a flush waits for both.
        self._hooks: deque[Any] = deque()
        self._hooks_wake = threading.Event()
        self._hooks_thread = threading.Thread(
            target=self._hook_loop, name="flightlog-run-end", daemon=True
        )
        self._hooks_thread.start()

    def after_fork_in_child(self) -> None:
        """In a forked child the parent's queue belongs to the parent: start afresh."""
        self._lineage = {}
        self._lineage_bytes = 0
        self.dropped = self._reported_drops = 0
        self._recorder_id = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        self._start()

    # -- caller side -----------------------------------------------------------------------
    def submit(self, item: Any) -> None:
        """Enqueue a record; waits up to ``block_timeout`` when full, then counts a drop."""
        q = self._queue
        if len(q) >= self.max_queue and not self._wait_for_room(self.block_timeout):
            self._drop("queue full")
            return
        if self._closed:
            self._drop("writer is closed")
            return
        q.append(item)
        self.enqueued += 1
        if len(q) == 1:
            self._wake.set()

    def _wait_for_room(self, timeout: float | None) -> bool:
        """Back-pressure: wait (bounded) until the queue has room."""
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while len(self._queue) >= self.max_queue:
            if not self._thread.is_alive():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        return True

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning(
                "flightlog dropped %d record(s) so far (%s): the store is not keeping up or is "
                "unavailable; check flightlog.stats()['last_error'], or raise "
                "$FLIGHTLOG_QUEUE_SIZE for bursts",
                self.dropped,
                why,
            )

    def flush(self, timeout: float | None = None, *, hooks: bool = True) -> bool:
        """Block until everything submitted before this call is durable and (``hooks``) its
        run-end hooks have run. True on success; False when the timeout passed or when any
        record submitted since the previous flush was lost."""
        if not self._thread.is_alive():
            return not self._queue
        if len(self._queue) >= self.max_queue and not self._wait_for_room(timeout):
            return False
        marker = _FlushMarker(hooks=hooks)
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout) and marker.ok

    def abandon_pending(self) -> int:
        """Give up on what is still queued (at exit, when the sink stays unavailable):
        count it as dropped and return how many records that was."""
        lost = 0
        while self._queue:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if isinstance(item, _FlushMarker):
                item.ok = False
                item.done.set()
            elif item is not None:
                lost += 1
        lost += self._in_flight  # the batch the worker is still retrying
        self._in_flight = 0
        self.dropped += lost
        return lost

    def close(self, timeout: float | None = 10.0) -> None:
        if self._closed:
            return
        ok = self.flush(timeout)
        self._closed = True
        if not ok:
            lost = self.abandon_pending()
            if lost:
                log.error(
                    "flightlog closed with %d record(s) not durable (%s); they are lost",
                    lost,
                    self.last_error or "timed out",
                )
        self._queue.append(None)
        self._wake.set()
        self._thread.join(timeout)
        self._hooks.append(None)
        self._hooks_wake.set()
        self._hooks_thread.join(timeout)
        self._report_drops(getattr(self.sink, "store", None))

    def stats(self) -> dict[str, Any]:
        return {
            "enqueued": self.enqueued,
            "written": self.written,
            "dropped": self.dropped,
            "pending": len(self._queue),
            "batches": self.batches,
            "write_failures": self.write_failures,
            "last_error": self.last_error,
            "hooks_pending": len(self._hooks),
            "hooks_skipped": self.hooks_skipped,
        }

    # -- worker side -----------------------------------------------------------------------
    def _loop(self) -> None:
        q = self._queue
        wake = self._wake
        pid = os.getpid()
        while True:
            if not q:
                wake.wait(self.linger)
                wake.clear()
                continue
            items: list[Any] = []
            stop = False
            while q and len(items) < self.batch_size:
                item = q.popleft()
                if item is None:
                    stop = True
                    break
                items.append(item)
            if os.getpid() != pid:  # forked: this thread object belongs to the parent
                return
            self._process(items)
            if stop:
                return

    def _process(self, items: list[Any]) -> None:
        markers = [i for i in items if isinstance(i, _FlushMarker)]
        records = [i for i in items if not isinstance(i, _FlushMarker)]
        if records:
            batch, ended = self._build(records)
            if self.privacy is not None:
                from flightlog.privacy import scrub

                scrub(batch, self.privacy)  # secrets out before the store or the network
            if len(batch):
                self._in_flight = len(records)
                written = self._write(batch)
                self._in_flight = 0
                if written:
                    self.written += len(records)
                    store = getattr(self.sink, "store", None)
                    if ended and store is not None:
                        self._run_hooks_later(store, ended)
                    self._report_drops(store)
                else:
                    self._lost_since_marker = True
        if markers:
            ok = not self._lost_since_marker
            self._lost_since_marker = False
            for m in markers:
                m.ok = ok
                if m.hooks:
                    # Released by the hook worker once the run-end hooks queued before it ran.
                    self._hooks.append(m)
                else:
                    m.done.set()
            self._hooks_wake.set()

    # -- run-end hooks (detection, alerting), off the write path -------------------------------
    def _run_hooks_later(self, store: Any, ended: list[str]) -> None:
        if len(self._hooks) >= self.max_hook_batches:
            self.hooks_skipped += len(ended)
            if self.hooks_skipped == len(ended) or self.hooks_skipped % 1000 < len(ended):
                log.warning(
                    "flightlog run-end processing is behind; skipped it for %d run(s) so far "
                    "(run `flightlog detect RUN` for them)",
                    self.hooks_skipped,
                )
            return
        self._hooks.append((store, ended))
        self._hooks_wake.set()

    def _hook_loop(self) -> None:
        q = self._hooks
        wake = self._hooks_wake
        pid = os.getpid()
        while True:
            if not q:
                wake.wait(self.linger)
                wake.clear()
                continue
            item = q.popleft()
            if item is None or os.getpid() != pid:
                return
            if isinstance(item, _FlushMarker):
                item.done.set()
                continue
            store, ended = item
            pipeline.runs_ended(store, ended)

    def _report_drops(self, store: Any) -> None:
        """Make drops visible to every reader of the store (``flightlog runs`` warns)."""
        dropped = self.dropped
        if dropped == self._reported_drops or store is None:
            return
        try:
            from flightlog.sdk import state

            store.report_drops(self._recorder_id, state.service, dropped)
            self._reported_drops = dropped
        except Exception as exc:
            log.warning("flightlog could not record its drop count in the store: %s", exc)

    def _write(self, batch: Batch) -> bool:
        delay = 0.05
        attempts = 0
        while True:
            try:
                self.sink.write(batch)
                self.batches += 1
                return True
            except Exception as exc:
                attempts += 1
                self.write_failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if attempts == 1 or attempts % 20 == 0:
                    log.warning("flightlog write failed (attempt %d), retrying: %s", attempts, exc)
                if self._closed and attempts >= 3:
                    self.dropped += len(batch)
                    log.error("flightlog gave up writing %d record(s) at close", len(batch))
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _build(self, records: list[Any]) -> tuple[Batch, list[str]]:
        batch = Batch()
        payloads: dict[str, Payload] = {}
        ended: list[str] = []
        cap = self.payload_cap

        def put(data: bytes | None) -> str | None:
            if data is None:
                return None
            p = make_payload(data, cap)
            payloads.setdefault(p.hash, p)
            return p.hash

        for rec in records:
            try:
                self._add_record(rec, batch, put, ended)
            except Exception as exc:  # one malformed record must not sink the batch
                self.dropped += 1
                self._lost_since_marker = True
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("flightlog could not record %s; it is dropped", type(rec).__name__)
        batch.payloads = list(payloads.values())
        # A run written twice in one batch (start and end): keep the last version only.
        if len(batch.runs) > 1:
            last: dict[str, Run] = {}
            for r in batch.runs:
                prev = last.get(r.id)
                if prev is not None and r.input_hash is None:
                    r.input_hash = prev.input_hash
                last[r.id] = r
            batch.runs = list(last.values())
        return batch, ended

    def _add_record(
        self, rec: Any, batch: Batch, put: Callable[[bytes | None], str | None], ended: list[str]
    ) -> None:
        if isinstance(rec, StepDone):
            s = rec.step
            s.input_hash = put(rec.input_json)
            s.output_hash = put(rec.output_json)
            batch.steps.append(s)
            index = self._lineage.get(s.run_id)
            if index is None:
                index = self._lineage[s.run_id] = ContentIndex()
            seen: set[str] = set()
            for source, param in rec.identity_sources:
                if source != s.id and source not in seen:
                    seen.add(source)
                    batch.edges.append(Edge(s.run_id, source, s.id, "data", "identity", param))
            for source, evidence, arg in index.sources(rec.input_json, s.id, s.started_ns):
                if source not in seen:
                    seen.add(source)
                    batch.edges.append(Edge(s.run_id, source, s.id, "data", evidence, arg))
            before = index.nbytes
            index.add_output(s.id, rec.output_json, s.ended_ns or s.started_ns, rec.input_json)
            self._lineage_bytes += index.nbytes - before
            self._bound_lineage()
        elif isinstance(rec, RunEvent):
            r = rec.run
            if rec.input_json is not None:
                r.input_hash = put(rec.input_json)
            if rec.output_json is not None:
                r.output_hash = put(rec.output_json)
            batch.runs.append(r)
            if rec.ended:
                ended.append(r.id)
                index = self._lineage.pop(r.id, None)
                if index is not None:
                    self._lineage_bytes -= index.nbytes
        elif isinstance(rec, Edge):
            batch.edges.append(rec)
        elif isinstance(rec, Finding):
            batch.findings.append(rec)
        elif isinstance(rec, Batch):
            batch.extend(rec)
        else:
            raise TypeError(f"not a record: {type(rec).__name__}")

    def _bound_lineage(self) -> None:
        """Forget the oldest runs' lineage indexes beyond the run count and memory budgets."""
        lineage = self._lineage
        while lineage and (
            len(lineage) > MAX_LINEAGE_RUNS or self._lineage_bytes > MAX_LINEAGE_BYTES
        ):
            index = lineage.pop(next(iter(lineage)))
            self._lineage_bytes -= index.nbytes
