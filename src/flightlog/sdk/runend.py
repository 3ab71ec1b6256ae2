"""Run-end processing in embedded mode: the run-end pipeline (detection, attribution,
alerting) for runs the background writer has made durable, on a thread of its own so that it
never holds up writing.

The writer hands over the ids of the runs each durable batch ended (``after``) and the flush
markers that wait for them (``release_after``); this thread runs
``flightlog.pipeline.runs_ended`` in that order and releases each marker once the runs queued
before it went through. The backlog is bounded: beyond ``max_batches`` waiting batches of ended
runs, run-end processing is skipped for new ones, counted and logged (``flightlog detect RUN``
runs it later).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import TYPE_CHECKING

from flightlog import pipeline
from flightlog.sdk.records import FlushMarker

if TYPE_CHECKING:
    from flightlog.store.base import Store

log = logging.getLogger("flightlog")


class RunEndWorker:
    """One thread running the run-end pipeline over ``store`` for ended runs, in order."""

    def __init__(self, store: Store, *, linger: float = 0.05, max_batches: int = 10_000) -> None:
        self.store = store
        self.linger = linger
        self.max_batches = max_batches
        self.skipped = 0
        self.start()

    def start(self) -> None:
        """Start (or, in a forked child, restart) the thread with an empty backlog."""
        self._queue: deque[list[str] | FlushMarker | None] = deque()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flightlog-run-end", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._queue)

    def after(self, ended: list[str]) -> None:
        """Queue run-end processing for runs that are now durable."""
        if len(self._queue) >= self.max_batches:
            self.skipped += len(ended)
            if self.skipped == len(ended) or self.skipped % 1000 < len(ended):
                log.warning(
                    "flightlog run-end processing is behind; skipped it for %d run(s) so far "
                    "(run `flightlog detect RUN` for them)",
                    self.skipped,
                )
            return
        self._queue.append(ended)
        self._wake.set()

    def release_after(self, markers: list[FlushMarker]) -> None:
        """Release ``markers`` once the run-end processing queued before them is done."""
        self._queue.extend(markers)
        self._wake.set()

    def stop(self, timeout: float | None) -> None:
        self._queue.append(None)
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        q = self._queue
        wake = self._wake
        pid = os.getpid()
        while True:
            if not q:
                wake.wait(self.linger)
                wake.clear()
                continue
            item = q.popleft()
            if item is None or os.getpid() != pid:
                return
            if isinstance(item, FlushMarker):
                item.release()
                continue
            pipeline.runs_ended(self.store, item)
