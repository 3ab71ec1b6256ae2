"""The background writer: callers enqueue, one thread makes batches durable through a sink.

It composes the parts, each a module of its own:

- ``batching.RecordQueue``: the bounded queue the callers' ``submit`` appends to
  (back-pressure, then counted drops), taken in batches of up to ``batch_size`` records;
- ``processing.BatchBuilder``: records into one scrubbed ``Batch`` (payload hashing, content
  lineage, privacy);
- a ``sink.Sink``: ``write`` makes the batch durable or raises; the writer keeps a failed
  batch and retries it with backoff (``flightlog._retry``: full jitter, so writers that
  failed together do not retry together; a locked or unavailable store), so nothing is dropped
  while the queue has room, and reports its drop count through the sink;
- ``runend.RunEndWorker`` (embedded mode only): the run-end pipeline for the runs each durable
  batch ended, on its own thread.

``flush()`` waits until everything submitted before it is durable (and, unless
``hooks=False``, through the run-end pipeline).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flightlog.payload import DEFAULT_CAP
from flightlog.sdk.batching import Drops, RecordQueue
from flightlog.sdk.processing import BatchBuilder
from flightlog.sdk.records import FlushMarker, Record, RunEvent, StepDone
from flightlog.sdk.sink import Sink

if TYPE_CHECKING:
    from flightlog.model import Batch
    from flightlog.privacy import Scrubber
    from flightlog.sdk.runend import RunEndWorker

__all__ = ["RunEvent", "StepDone", "Writer"]

log = logging.getLogger("flightlog")
# Retrying a failed batch write: the n-th retry waits up to min(2 s, 50 ms * 2**(n-1)).
WRITE_RETRY_BASE_S = 0.05
WRITE_RETRY_CAP_S = 2.0


def _recorder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"


class Writer:
    """Bounded queue + one worker thread writing batches into a ``Sink``."""

    def __init__(
        self,
        sink: Sink,
        *,
        run_end: RunEndWorker | None = None,
        service: Callable[[], str | None] = lambda: None,
        max_queue: int = 20_000,
        batch_size: int = 1_000,
        linger: float = 0.05,
        block_timeout: float = 1.0,
        payload_cap: int = DEFAULT_CAP,
        privacy: Scrubber | None = None,
    ) -> None:
        self.sink = sink
        self.run_end = run_end  # None: run-end processing happens elsewhere (a server)
        self._service = service  # the service name drops are reported under
        self.batch_size = batch_size
        self.linger = linger
        self.builder = BatchBuilder(payload_cap=payload_cap, privacy=privacy)
        self.drops = Drops()
        self.queue = RecordQueue(self.drops, max_items=max_queue, block_timeout=block_timeout)
        self.written = 0
        self.batches = 0
        self.write_failures = 0
        self.last_error: str | None = None
        self._reported_drops = 0
        self._recorder_id = _recorder_id()
        self._lost_since_marker = False
        self._in_flight = 0
        self._closed = False
        self._start()

    def _start(self) -> None:
        # The hot path: ``submit`` is the queue's own method, no extra call level.
        self.submit: Callable[[Record], None] = self.queue.submit
        self._thread = threading.Thread(target=self._loop, name="flightlog-writer", daemon=True)
        self.queue.consumer = self._thread
        self._thread.start()

    def after_fork_in_child(self) -> None:
        """In a forked child the parent's queue and threads belong to the parent: start
        afresh (what the parent had queued is the parent's to write)."""
        self.builder.reset()
        self.drops = Drops()
        self._reported_drops = 0
        self.queue = RecordQueue(
            self.drops, max_items=self.queue.max_items, block_timeout=self.queue.block_timeout
        )
        self._recorder_id = _recorder_id()
        self._start()
        if self.run_end is not None:
            self.run_end.start()

    # -- counters --------------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        return self.drops.count

    @dropped.setter
    def dropped(self, value: int) -> None:
        self.drops.count = value

    @property
    def enqueued(self) -> int:
        return self.queue.enqueued

    @property
    def privacy(self) -> Scrubber | None:
        return self.builder.privacy

    def stats(self) -> dict[str, Any]:
        return {
            "enqueued": self.queue.enqueued,
            "written": self.written,
            "dropped": self.drops.count,
            "pending": len(self.queue),
            "batches": self.batches,
            "write_failures": self.write_failures,
            "last_error": self.last_error,
            "hooks_pending": len(self.run_end) if self.run_end is not None else 0,
            "hooks_skipped": self.run_end.skipped if self.run_end is not None else 0,
        }

    # -- caller side -----------------------------------------------------------------------
    def flush(self, timeout: float | None = None, *, hooks: bool = True) -> bool:
        """Block until everything submitted before this call is durable and (``hooks``) its
        run-end hooks have run. True on success; False when the timeout passed or when any
        record submitted since the previous flush was lost."""
        if not self._thread.is_alive():
            return not self.queue.items
        marker = FlushMarker(hooks=hooks)
        if not self.queue.mark(marker, timeout):
            return False
        return marker.done.wait(timeout) and marker.ok

    def abandon_pending(self) -> int:
        """Give up on what is still queued (at exit, when the sink stays unavailable):
        count it as dropped and return how many records that was."""
        lost = self.queue.abandon()
        lost += self._in_flight  # the batch the worker is still retrying
        self._in_flight = 0
        self.drops.count += lost
        return lost

    def close(self, timeout: float | None = 10.0) -> None:
        if self._closed:
            return
        ok = self.flush(timeout)
        self._closed = self.queue.closed = True
        if not ok:
            lost = self.abandon_pending()
            if lost:
                log.error(
                    "flightlog closed with %d record(s) not durable (%s); they are lost",
                    lost,
                    self.last_error or "timed out",
                )
        self.queue.stop()
        self._thread.join(timeout)
        if self.run_end is not None:
            self.run_end.stop(timeout)
        self._report_drops()

    # -- worker side -----------------------------------------------------------------------
    def _loop(self) -> None:
        take = self.queue.take
        pid = os.getpid()
        while True:
            records, markers, stop = take(self.batch_size, self.linger)
            if os.getpid() != pid:  # forked: this thread object belongs to the parent
                return
            if records:
                self._write_records(records)
            if markers:
                self._release(markers)
            if stop:
                return

    def _write_records(self, records: list[Record]) -> None:
        done = self.builder.process(records)
        if done.failed:
            self.drops.count += done.failed
            self.last_error = done.error
            self._lost_since_marker = True
        if not len(done.batch):
            return
        self._in_flight = len(records)
        written = self._write(done.batch)
        self._in_flight = 0
        if not written:
            self._lost_since_marker = True
            return
        self.written += len(records)
        if done.ended and self.run_end is not None:
            self.run_end.after(done.ended)
        self._report_drops()

    def _release(self, markers: list[FlushMarker]) -> None:
        ok = not self._lost_since_marker
        self._lost_since_marker = False
        waiting: list[FlushMarker] = []
        for m in markers:
            m.ok = ok
            if m.hooks and self.run_end is not None:
                waiting.append(m)  # released once the run-end hooks queued before it ran
            else:
                m.done.set()
        if waiting:
            assert self.run_end is not None
            self.run_end.release_after(waiting)

    def _report_drops(self) -> None:
        """Make drops visible to every reader of the records (``flightlog runs`` warns)."""
        dropped = self.drops.count
        if dropped == self._reported_drops:
            return
        try:
            self.sink.report_drops(self._recorder_id, self._service(), dropped)
            self._reported_drops = dropped
        except Exception as exc:
            log.warning("flightlog could not record its drop count in the store: %s", exc)

    def _write(self, batch: Batch) -> bool:
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
                    self.drops.count += len(batch)
                    log.error("flightlog gave up writing %d record(s) at close", len(batch))
                    return False
                from flightlog._retry import backoff_s  # not at import: it loads email.utils

                time.sleep(backoff_s(attempts, base_s=WRITE_RETRY_BASE_S, cap_s=WRITE_RETRY_CAP_S))
