"""Queueing and batching: the bounded hand-over from the callers' threads to the writer.

The hot path is ``RecordQueue.submit``: an ``append`` on a deque (atomic under the GIL, far
cheaper than ``queue.Queue``'s lock and condition). When the queue is full the caller waits up
to ``block_timeout`` seconds for room (back-pressure) and only then drops the record, counting
it in ``Drops``: a drop is never silent (``flightlog.stats()["dropped"]`` and a warning).

The writer thread sleeps on an event the first producer into an empty queue sets, and takes
what is queued in batches of at most ``batch_size`` records (``take``), flush markers apart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from flightlog.sdk.records import FlushMarker, Record

log = logging.getLogger("flightlog")

_STOP = None  # queued by ``stop()``: the writer thread ends after what came before it


class Drops:
    """Records lost, counted and reported (a warning on the first and every thousandth)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def add(self, n: int, why: str) -> None:
        before = self.count
        self.count += n
        if before == 0 or before // 1000 != self.count // 1000:
            log.warning(
                "flightlog dropped %d record(s) so far (%s): the store is not keeping up or is "
                "unavailable; check flightlog.stats()['last_error'], or raise "
                "$FLIGHTLOG_QUEUE_SIZE for bursts",
                self.count,
                why,
            )


class RecordQueue:
    """Bounded queue of records and flush markers, with back-pressure and counted drops."""

    def __init__(self, drops: Drops, *, max_items: int, block_timeout: float) -> None:
        self.drops = drops
        self.max_items = max_items
        self.block_timeout = block_timeout
        self.enqueued = 0
        self.closed = False
        self.items: deque[Record | FlushMarker | None] = deque()
        self.wake = threading.Event()
        self.consumer: threading.Thread | None = None  # its death ends back-pressure waits

    def __len__(self) -> int:
        return len(self.items)

    # -- the callers' side -----------------------------------------------------------------
    def submit(self, item: Record) -> None:
        """Enqueue a record; waits up to ``block_timeout`` when full, then counts a drop."""
        q = self.items
        if len(q) >= self.max_items and not self.wait_for_room(self.block_timeout):
            self.drops.add(1, "queue full")
            return
        if self.closed:
            self.drops.add(1, "writer is closed")
            return
        q.append(item)
        self.enqueued += 1
        if len(q) == 1:
            self.wake.set()

    def mark(self, marker: FlushMarker, timeout: float | None) -> bool:
        """Queue a flush marker behind what is queued; False when there was no room in time."""
        if len(self.items) >= self.max_items and not self.wait_for_room(timeout):
            return False
        self.items.append(marker)
        self.wake.set()
        return True

    def stop(self) -> None:
        """Let the consumer end once it has taken what is queued now."""
        self.items.append(_STOP)
        self.wake.set()

    def wait_for_room(self, timeout: float | None) -> bool:
        """Back-pressure: wait (bounded) until the queue has room."""
        self.wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while len(self.items) >= self.max_items:
            consumer = self.consumer
            if consumer is not None and not consumer.is_alive():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        return True

    def abandon(self) -> int:
        """Empty the queue: release its markers as failed; the number of records it held."""
        lost = 0
        q = self.items
        while q:
            try:
                item = q.popleft()
            except IndexError:
                break
            if isinstance(item, FlushMarker):
                item.release(ok=False)
            elif item is not None:
                lost += 1
        return lost

    # -- the writer thread's side ----------------------------------------------------------
    def take(self, limit: int, linger: float) -> tuple[list[Record], list[FlushMarker], bool]:
        """The next batch: up to ``limit`` records in queue order, the flush markers among
        them, and whether the queue was stopped. Waits up to ``linger`` seconds for work."""
        q = self.items
        if not q:
            self.wake.wait(linger)
            self.wake.clear()
        records: list[Record] = []
        markers: list[FlushMarker] = []
        append = records.append
        popleft = q.popleft
        while q and len(records) < limit:
            item = popleft()
            if item is None:
                return records, markers, True
            if isinstance(item, FlushMarker):
                markers.append(item)
            else:
                append(item)
        return records, markers, False
