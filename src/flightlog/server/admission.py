"""Admission of OTLP request bodies: what a request may hold, and for how long.

Three limits keep one client, or a few hostile ones, from stalling or exhausting the server:

- **Body timeouts.** A body must keep arriving: no byte for ``idle_timeout`` seconds, or not
  complete within ``body_timeout`` seconds, and the request gets 408. A client sending its
  headers and one byte holds nothing but its own connection.
- **Bytes held.** The bodies received and not yet answered (being read, waiting, decoding,
  waiting for the commit) may total at most ``held_limit`` bytes. Counted as bytes arrive,
  not as declared, so a slow client that announces 30 MB holds nothing it has not sent. A
  request that would go beyond gets 429 with ``Retry-After`` before anything is decoded.
  Once decoded, a request holds its decompressed size (``grow``: counted, never shed, as
  it is in memory already) until it is answered: so the parsed requests waiting for the
  writer's commit stay within the budget, and while they fill it new bodies get 429.
- **Decode budget.** Decoding takes memory and CPU in proportion to the decoded body, so
  decode slots are weighed in bytes (``decode_limit``, at least one largest body), taken
  only once the whole body has arrived, and only while decoding (``DecodeSlot``): a
  request waiting for the writer's commit has given its slot back, so a slow commit (a
  long fsync, the write lock held elsewhere) does not stop other requests' decoding. A
  large body waits for room; small ones pass beside it.

Together they bound peak memory to a small multiple of ``max_body`` (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from flightlog.errors import ConfigurationError


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ConfigurationError(f"${name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 3600:
        raise ConfigurationError(f"${name} must be between 0 and 3600 seconds, got {value}")
    return value


class Shed(Exception):
    """Load shed: answer 429 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class AdmissionStats:
    shed: int = 0
    timeouts: int = 0
    waiting_for_decode: int = 0


@dataclass
class Admission:
    max_body: int
    held_limit: int
    decode_limit: int
    idle_timeout: float = 10.0
    body_timeout: float = 60.0
    held: int = 0
    decoding: int = 0
    stats: AdmissionStats = field(default_factory=AdmissionStats)
    _room: asyncio.Condition | None = None

    @classmethod
    def for_body_limit(cls, max_body: int) -> Admission:
        """Limits for ``max_body``; timeouts from ``$FLIGHTLOG_BODY_IDLE_TIMEOUT`` and
        ``$FLIGHTLOG_BODY_TIMEOUT`` (seconds; defaults 10 and 60)."""
        return cls(
            max_body=max_body,
            held_limit=2 * max_body + (16 << 20),
            decode_limit=max_body + (8 << 20),
            idle_timeout=_seconds("FLIGHTLOG_BODY_IDLE_TIMEOUT", 10.0),
            body_timeout=_seconds("FLIGHTLOG_BODY_TIMEOUT", 60.0),
        )

    def hold(self, n: int) -> None:
        """Count ``n`` more received bytes; ``Shed`` if that goes beyond the limit."""
        if self.held + n > self.held_limit:
            self.stats.shed += 1
            raise Shed(
                f"the server holds {self.held} bytes of request bodies (limit "
                f"{self.held_limit}); retry after the indicated delay"
            )
        self.held += n

    def release(self, n: int) -> None:
        self.held -= n

    def _condition(self) -> asyncio.Condition:
        if self._room is None:
            self._room = asyncio.Condition()
        return self._room

    def grow(self, n: int) -> None:
        """Count ``n`` more bytes held by a request already admitted (its body decompressed):
        never shed, as they are in memory already; arrivals are shed while they fill the
        budget."""
        self.held += n

    async def _take(self, weight: int) -> int:
        weight = min(weight, self.decode_limit)
        room = self._condition()
        async with room:
            self.stats.waiting_for_decode += 1
            try:
                await room.wait_for(lambda: self.decoding + weight <= self.decode_limit)
            finally:
                self.stats.waiting_for_decode -= 1
            self.decoding += weight
        return weight

    async def _give(self, weight: int) -> None:
        room = self._condition()
        async with room:
            self.decoding -= weight
            room.notify_all()

    def slot(self) -> DecodeSlot:
        """A request's hold on the decode budget (taken and given back around each stretch
        of decoding)."""
        return DecodeSlot(self)

    @contextlib.asynccontextmanager
    async def decode_slot(self, weight: int) -> AsyncIterator[None]:
        """Wait until ``weight`` bytes of decoding fit the budget (one request always fits)."""
        slot = self.slot()
        await slot.take(weight)
        try:
            yield
        finally:
            await slot.give()


class DecodeSlot:
    """One request's share of the decode budget: ``take`` waits until ``weight`` bytes of
    decoding fit (one request always fits; taking again while held is a no-op), ``give``
    returns it (a no-op when not held). The request takes it to decode and gives it back
    before waiting for the writer, so a slow commit holds no decode budget."""

    __slots__ = ("_admission", "weight")

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.weight = 0

    async def take(self, weight: int) -> None:
        if not self.weight:
            self.weight = await self._admission._take(max(1, weight))

    async def give(self) -> None:
        if self.weight:
            weight, self.weight = self.weight, 0
            await self._admission._give(weight)


_TRIM_BYTES = 4 << 20


def _load_trim() -> object:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:  # pragma: no cover - not glibc
        return None


_trim: object = None


def release_memory(body_bytes: int) -> None:
    """After a large body, hand freed heap back to the OS (glibc ``malloc_trim``), so the
    server's RSS falls back instead of staying at its peak. A no-op elsewhere."""
    global _trim
    if body_bytes < _TRIM_BYTES:
        return
    if _trim is None:
        _trim = _load_trim() or False
    if _trim:
        _trim(0)  # type: ignore[operator]
