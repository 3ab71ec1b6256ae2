"""Faults a workflow implements itself: a stale cache, a hallucinated field, a wrong rate.

Generic faults (``faults.KINDS``) change what a step returns from the outside. Some faults
only the application can produce realistically; its code asks whether one is armed::

    from flightlog.drills import armed, drill_rng

    @flightlog.step(kind="tool", owner="finance-team")
    def fx_rates(currency):
        if armed("fx_rates") == "stale":
            return {"rate": 0.91, "as_of": "2024-01-01"}
        ...

A drill arms one with ``kind = "custom"`` and ``params = { name = "stale" }``; tests and
benchmarks arm several with ``with arming({"fx_rates": "stale"}, seed="x"):``. Outside a
drill ``armed`` returns None at the cost of one context-variable read. ``drill_rng()`` is a
seeded RNG for simulated data, so a drill or a scenario repeats exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_armed: ContextVar[dict[str, str] | None] = ContextVar("flightlog_drill_armed", default=None)
_rng: ContextVar[random.Random | None] = ContextVar("flightlog_drill_rng", default=None)


def armed(step: str) -> str | None:
    """The custom fault armed for ``step`` in this context, if any."""
    faults = _armed.get()
    return None if faults is None else faults.get(step)


def arming_active() -> bool:
    """True when any custom fault is armed in this context."""
    return bool(_armed.get())


def drill_rng() -> random.Random:
    """The seeded RNG of the current drill or scenario (seed 0 outside one)."""
    r = _rng.get()
    if r is None:
        r = random.Random(0)
        _rng.set(r)
    return r


@contextmanager
def arming(faults: dict[str, str], seed: int | str | None = None) -> Iterator[None]:
    """Arm custom ``faults`` ({step: fault name}) inside the block; with ``seed``, also
    give the block a fresh seeded ``drill_rng()``."""
    merged = {**(_armed.get() or {}), **faults}
    t1 = _armed.set(merged)
    t2 = _rng.set(random.Random(seed)) if seed is not None else None
    try:
        yield
    finally:
        _armed.reset(t1)
        if t2 is not None:
            _rng.reset(t2)
