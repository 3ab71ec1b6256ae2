"""Flightlog: the flight recorder and crash investigator for AI agents.

Record every decision of an agent workflow with its lineage::

    import flightlog

    @flightlog.step(kind="tool", agent="retriever", owner="search-team")
    def search_policy(query: str) -> list[str]: ...

    with flightlog.run("claims-triage", owner="claims-team", input=claim) as run:
        docs = search_policy(claim["text"])
        flightlog.check(len(docs) > 0, "has_docs", "retrieval returned no documents")

    flightlog.flush()

``import flightlog`` loads only the standard library, ``orjson`` and ``click``-free SDK code;
stores, servers and protocol packages load when first used.
"""

from __future__ import annotations

from flightlog.errors import (
    ConfigurationError,
    FlightlogError,
    InputError,
    LedgerError,
    NotFoundError,
    StoreCorruptError,
    StoreError,
)
from flightlog.model import Edge, ErrorInfo, Finding, Payload, Run, RunRecord, Step
from flightlog.sdk.recorder import (
    ActiveRun,
    ActiveStep,
    annotate,
    check,
    current_run,
    current_step,
    edge,
    run,
    step,
    usage,
    wrap,
)
from flightlog.sdk.state import configure, flush, shutdown, stats

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "ActiveStep",
    "ConfigurationError",
    "Edge",
    "ErrorInfo",
    "Finding",
    "FlightlogError",
    "InputError",
    "LedgerError",
    "NotFoundError",
    "Payload",
    "Run",
    "RunRecord",
    "Step",
    "StoreCorruptError",
    "StoreError",
    "__version__",
    "annotate",
    "check",
    "configure",
    "current_run",
    "current_step",
    "edge",
    "flush",
    "open_store",
    "run",
    "shutdown",
    "stats",
    "step",
    "usage",
    "wrap",
    "detector",
    "replay",
    "why",
]


def open_store(url: str | None = None, *, readonly: bool = False):  # type: ignore[no-untyped-def]
    """Open the store at ``url`` (default: ``$FLIGHTLOG_URL`` or ``sqlite:///flightlog.db``),
    with the audit ledger attached unless ``readonly`` (``flightlog.app``)."""
    from flightlog.app import open_store as _open

    return _open(url, readonly=readonly)


def why(run_id: str, **options):  # type: ignore[no-untyped-def]
    """Attribute a run's failure (``flightlog.forensics.Attribution``) using the configured
    store: flushes pending records first. When the SDK sends to a Flightlog server, asks the
    server (``api_key=``: a read key, default the SDK's key; ``timeout=`` seconds to wait for
    the run to arrive and end, default 30). See docs/forensics.md."""
    from flightlog.sdk.forensics import why as _why

    return _why(run_id, **options)


def replay(fn, run_id, override=None, **options):  # type: ignore[no-untyped-def]
    """Counterfactual replay: re-execute workflow ``fn`` with the recorded outputs of
    ``run_id``, ``override`` = {step name: value}; returns a ``flightlog.sdk.replay.Replay``
    (``.succeeded``, ``.status``, ``.reason``). Nothing is recorded. See docs/forensics.md."""
    from flightlog.sdk.replay import replay as _replay

    return _replay(fn, run_id, override, **options)


def detector(fn=None, *, name=None):  # type: ignore[no-untyped-def]
    """Register a detector: ``@flightlog.detector`` or ``@flightlog.detector(name="x")``.

    A detector is a callable ``detector(run: flightlog.detect.RunContext) -> findings``.
    """
    from flightlog.detect.registry import detector as _detector

    return _detector(fn, name=name)
