"""The background writer: the caller enqueues, one thread batches records into the sink.

The hot path is ``submit``: a ``put`` on a bounded queue. When the queue is full the caller
waits up to ``block_timeout`` seconds for room (back-pressure) and only then drops the
record, counting it. A drop is never silent: ``stats()["dropped"]`` counts it and a warning
is logged.

The worker takes whatever is queued (up to ``batch_size`` items), turns it into one
``Batch`` (hashing payloads, inferring content lineage), and writes it through the sink.
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
from dataclasses import dataclass, field
from typing import Any

from flightlog import pipeline
from flightlog.model import Batch, Edge, Finding, Payload, Run, Step
from flightlog.sdk.lineage import ContentIndex
from flightlog.sdk.payload import DEFAULT_CAP, make_payload

log = logging.getLogger("flightlog")


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
    ) -> None:
        self.sink = sink
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

    def after_fork_in_child(self) -> None:
        """In a forked child the parent's queue belongs to the parent: start afresh."""
        self._lineage = {}
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
            log.warning("flightlog dropped %d record(s) so far (%s)", self.dropped, why)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything submitted before this call is durable. True on success."""
        if not self._thread.is_alive():
            return not self._queue
        if len(self._queue) >= self.max_queue and not self._wait_for_room(timeout):
            return False
        marker = _FlushMarker()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout) and marker.ok

    def close(self, timeout: float | None = 10.0) -> None:
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._queue.append(None)
        self._wake.set()
        self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        return {
            "enqueued": self.enqueued,
            "written": self.written,
            "dropped": self.dropped,
            "pending": len(self._queue),
            "batches": self.batches,
            "write_failures": self.write_failures,
            "last_error": self.last_error,
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
        ok = True
        if records:
            try:
                batch, ended = self._build(records)
            except Exception as exc:  # a bug here must not kill the thread
                log.exception("flightlog could not build a batch; %d record(s) lost", len(records))
                self.dropped += len(records)
                self.last_error = f"{type(exc).__name__}: {exc}"
                batch, ended, ok = Batch(), [], False
            if len(batch):
                ok = self._write(batch) and ok
                if ok:
                    self.written += len(records)
                    store = getattr(self.sink, "store", None)
                    if ended and store is not None:
                        pipeline.runs_ended(store, ended)
                    self._report_drops(store)
        for m in markers:
            m.ok = ok
            m.done.set()

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
            if isinstance(rec, StepDone):
                s = rec.step
                s.input_hash = put(rec.input_json)
                s.output_hash = put(rec.output_json)
                batch.steps.append(s)
                index = self._lineage.get(s.run_id)
                if index is None:
                    index = self._lineage[s.run_id] = ContentIndex()
                    if len(self._lineage) > 10_000:  # runs that never ended
                        self._lineage.pop(next(iter(self._lineage)))
                seen: set[str] = set()
                for source, param in rec.identity_sources:
                    if source != s.id and source not in seen:
                        seen.add(source)
                        batch.edges.append(Edge(s.run_id, source, s.id, "data", "identity", param))
                for source, evidence, param in index.sources(rec.input_json, s.id):
                    if source not in seen:
                        seen.add(source)
                        batch.edges.append(Edge(s.run_id, source, s.id, "data", evidence, param))
                index.add_output(s.id, rec.output_json)
            elif isinstance(rec, RunEvent):
                r = rec.run
                if rec.input_json is not None:
                    r.input_hash = put(rec.input_json)
                if rec.output_json is not None:
                    r.output_hash = put(rec.output_json)
                batch.runs.append(r)
                if rec.ended:
                    ended.append(r.id)
                    self._lineage.pop(r.id, None)
            elif isinstance(rec, Edge):
                batch.edges.append(rec)
            elif isinstance(rec, Finding):
                batch.findings.append(rec)
            elif isinstance(rec, Batch):
                batch.extend(rec)
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
