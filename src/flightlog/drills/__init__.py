"""Did we test it? Fire drills: inject faults into a workflow and prove that detection,
attribution and alerting fire, as a CI check.

Modules: ``faults`` (the fault kinds), ``inject`` (injecting them at named steps),
``custom`` (faults the application implements, armed by a drill),
``spec`` (the drill file), ``runner`` (running a drill and checking the chain), ``report``
(what it found),
``receiver`` (the local webhook receiver), ``proxy`` (an OpenAI-compatible fault proxy for
applications traced only through OpenTelemetry). A drill's result is kept by
``flightlog.reliability.drills`` (the board report reads it). Drills configure the SDK and
wrap its recorder: they sit above it (docs/architecture.md). See docs/drills.md.
"""

from __future__ import annotations

from flightlog.drills.custom import armed, arming, arming_active, drill_rng
from flightlog.drills.faults import KINDS, Fault, InjectedError, RateLimited
from flightlog.drills.inject import Injection, injected

__all__ = [
    "KINDS",
    "Fault",
    "InjectedError",
    "Injection",
    "RateLimited",
    "armed",
    "arming",
    "arming_active",
    "drill_rng",
    "injected",
]
