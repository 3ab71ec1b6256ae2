"""Where the background writer sends batches: the ``Sink`` protocol and the local one.

``write(batch)`` returns only once the batch is durable (committed to the store, or
acknowledged by a server / spooled to disk for the remote sink) and raises when it is not.
``drain(timeout)`` waits for delivery beyond durability (the remote sink's spool) and returns
what is still undelivered; ``report_undelivered()`` logs that at exit. ``report_drops``
makes the writer's drop count visible where records are read. ``StoreSink`` writes to a
local store; ``flightlog.sdk.remote.RemoteSink`` sends OTLP to a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from flightlog.model import Batch

if TYPE_CHECKING:
    from flightlog.store.base import Store


class Sink(Protocol):
    """Destination of recorded batches."""

    def write(self, batch: Batch) -> None:
        """Make the batch durable, or raise."""

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for what is durable but not yet delivered (a
        spool); the number of batches still undelivered (0 for a store)."""

    def report_undelivered(self) -> None:
        """Log what is durable but not delivered (at exit)."""

    def report_drops(self, recorder: str, service: str | None, dropped: int) -> None:
        """Record that ``recorder`` has dropped ``dropped`` records in all, where readers of
        the records see it (a no-op where there is no such place)."""

    def stats(self) -> dict[str, Any]:
        """Counters shown by ``flightlog.stats()["sink"]``."""

    def close(self) -> None:
        """Release resources. Idempotent."""


class StoreSink:
    """Writes batches into a ``Store`` (SQLite or PostgreSQL) in one transaction each."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, batch: Batch) -> None:
        self.store.write(batch)

    def drain(self, timeout: float) -> int:
        return 0  # durable is delivered

    def report_undelivered(self) -> None:
        pass

    def report_drops(self, recorder: str, service: str | None, dropped: int) -> None:
        # ``flightlog runs`` (and every reader of the store) warns about them.
        self.store.report_drops(recorder, service, dropped)

    def stats(self) -> dict[str, Any]:
        return {"sink": "store", "url": getattr(self.store, "display_url", self.store.url)}

    def close(self) -> None:
        self.store.close()
