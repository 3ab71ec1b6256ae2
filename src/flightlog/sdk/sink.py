"""Where the background writer sends batches.

A ``Sink`` has two methods: ``write(batch)``, which returns only once the batch is durable
(committed to the store, or acknowledged by a server / spooled to disk for the remote sink)
and raises when it is not; and ``close()``. ``StoreSink`` writes to a local store.
"""

from __future__ import annotations

from typing import Any, Protocol

from flightlog.model import Batch


class Sink(Protocol):
    """Destination of recorded batches."""

    def write(self, batch: Batch) -> None:
        """Make the batch durable, or raise."""

    def close(self) -> None:
        """Release resources. Idempotent."""


class StoreSink:
    """Writes batches into a ``Store`` (SQLite or PostgreSQL) in one transaction each."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def write(self, batch: Batch) -> None:
        self.store.write(batch)

    def close(self) -> None:
        self.store.close()

    def stats(self) -> dict[str, Any]:
        return {"sink": "store", "url": getattr(self.store, "display_url", self.store.url)}
