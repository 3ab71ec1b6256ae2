"""Two ``flightlog serve`` processes on one PostgreSQL database receive spans of the same traces
at the same moment: each run's stored outcome is what all its stored spans imply.

Per trace, one server gets the root span (an agent, OK) and an OK LLM call; the other, at the
same time, a tool call that ended in error after them, with nothing deciding anything after
it: the run failed at that tool call. Each server derives an outcome from what it has seen;
before the store derived it inside the write transaction under the run's row lock, a server
that read before the other committed wrote a stale "succeeded" over the evidence (or wrote
the error span without re-deriving), in a share of the traces that followed the timing.
Real servers, real OTLP/HTTP protobuf, real PostgreSQL; rounds alternate which server gets
which half.
"""

from __future__ import annotations

import pytest

pytest.importorskip("httpx")
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import (  # noqa: E402
    Span,
    Status,
)

from tests.integration.store.two_servers import (  # noqa: E402
    Server,
    body,
    post_at_once,
)

pytestmark = pytest.mark.slow

ROUNDS = 6
TRACES = 150  # per round
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
ROOT, LLM, TOOL = "a000000000000001", "a000000000000002", "a000000000000003"


def _span(
    trace: str, sid: str, parent: str | None, kind: str, start: int, end: int, error: bool
) -> Span:
    attrs = {"openinference.span.kind": kind, "input.value": f"q-{trace[:8]}-{sid[-1]}"}
    return Span(
        trace_id=bytes.fromhex(trace),
        span_id=bytes.fromhex(sid),
        parent_span_id=bytes.fromhex(parent) if parent else b"",
        name=kind.lower(),
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=T0 + start * MS,
        end_time_unix_nano=T0 + end * MS,
        attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs.items()],
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK),
    )


def _halves(traces: list[str]) -> tuple[bytes, bytes]:
    root = [
        s
        for t in traces
        for s in (
            _span(t, ROOT, None, "AGENT", 0, 1000, False),
            _span(t, LLM, ROOT, "LLM", 10, 50, False),
        )
    ]
    late = [_span(t, TOOL, ROOT, "TOOL", 500, 900, True) for t in traces]
    return body(root), body(late)


def test_two_servers_store_the_outcome_all_spans_imply(servers: list[Server], pg_url: str) -> None:
    from flightlog.store import open_store

    every: list[str] = []
    for n in range(ROUNDS):
        traces = [f"{n + 1:08x}{i:024x}" for i in range(TRACES)]
        every += traces
        root, late = _halves(traces)
        pair = [(servers[n % 2], root), (servers[(n + 1) % 2], late)]
        post_at_once(pair)

    store = open_store(pg_url, readonly=True)
    try:
        wrong = []
        for trace in every:
            run = store.get_run(trace)
            assert run is not None
            if (run.status, run.failed_step_id) != ("failed", TOOL):
                wrong.append((trace, run.status, run.failed_step_id))
        steps = store.step_outlines(every)
        assert all(len(steps.get(t, [])) == 3 for t in every)
    finally:
        store.close()
    assert not wrong, f"{len(wrong)} of {len(every)} runs stored a stale outcome: {wrong[:3]}"
