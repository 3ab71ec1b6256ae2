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
from tests.integration.store.two_servers import (  # noqa: E402
    Server,
    body,
    post_at_once,
    span,
)

pytestmark = pytest.mark.slow

ROUNDS = 6
TRACES = 150  # per round
ROOT, LLM, TOOL = "a000000000000001", "a000000000000002", "a000000000000003"


def _halves(traces: list[str]) -> tuple[bytes, bytes]:
    root = [
        s
        for t in traces
        for s in (
            span(t, ROOT, None, "AGENT", 0, 1000),
            span(t, LLM, ROOT, "LLM", 10, 50),
        )
    ]
    late = [span(t, TOOL, ROOT, "TOOL", 500, 900, error=True) for t in traces]
    return body(root), body(late)


def test_two_servers_store_the_outcome_all_spans_imply(
    servers: list[Server], two_servers_pg_url: str
) -> None:
    from flightlog.store import open_store

    every: list[str] = []
    for n in range(ROUNDS):
        traces = [f"a{n + 1:07x}{i:024x}" for i in range(TRACES)]  # this test's own
        every += traces
        root, late = _halves(traces)
        pair = [(servers[n % 2], root), (servers[(n + 1) % 2], late)]
        post_at_once(pair)

    store = open_store(two_servers_pg_url, readonly=True)
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
