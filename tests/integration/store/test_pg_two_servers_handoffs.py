"""Two ``flightlog serve`` processes on one PostgreSQL database receive spans of the same traces
at the same moment: each run's stored hand-off edges are what one server receiving all its
spans would store.

Per trace, a workflow (the root span) hands over from the agent ``triage`` to the agent
``billing`` (OpenInference graph nodes: ``billing``'s ``graph.node.parent_id`` names
``triage``). One server gets the root span and one agent's span; the other, at the same time,
the other agent's span. Each server links the hand-offs its spans open with the spans it read
before writing; before the store linked them again inside the write transaction, under the
run's row lock, when another server had stored spans of the run meanwhile, the edge
triage -> billing was missing whenever both servers read before either committed. Real
servers, real OTLP/HTTP protobuf, real PostgreSQL; rounds alternate which server gets which
half and which agent's span goes with the root.
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

ROUNDS = 8
TRACES = 150  # per round
ROOT, TRIAGE, BILLING = "d000000000000001", "d000000000000002", "d000000000000003"


def _halves(traces: list[str], triage_with_root: bool) -> tuple[bytes, bytes]:
    """The root span with one agent's span, and the other agent's span."""
    root, with_root, alone = [], [], []
    for t in traces:
        triage = span(t, TRIAGE, ROOT, "AGENT", 10, 200, **{"graph.node.id": "triage"})
        billing = span(
            t,
            BILLING,
            ROOT,
            "AGENT",
            300,
            900,
            **{"graph.node.id": "billing", "graph.node.parent_id": "triage"},
        )
        root.append(span(t, ROOT, None, "CHAIN", 0, 1000))
        with_root.append(triage if triage_with_root else billing)
        alone.append(billing if triage_with_root else triage)
    return body(root + with_root), body(alone)


def test_two_servers_store_the_hand_offs_one_server_would(
    servers: list[Server], two_servers_pg_url: str
) -> None:
    from flightlog.store import open_store

    every: list[str] = []
    for n in range(ROUNDS):
        traces = [f"d{n + 1:07x}{i:024x}" for i in range(TRACES)]  # this test's own
        every += traces
        first, second = _halves(traces, triage_with_root=n % 4 < 2)
        pair = [(servers[n % 2], first), (servers[(n + 1) % 2], second)]
        post_at_once(pair)

    store = open_store(two_servers_pg_url, readonly=True)
    try:
        steps = store.step_outlines(every)
        assert all(len(steps.get(t, [])) == 3 for t in every)
        missing = []
        for trace in every:
            edges = {(e.source, e.target, e.kind) for e in store.get_record(trace).edges}
            if (TRIAGE, BILLING, "handoff") not in edges:
                missing.append(trace)
            assert {e for e in edges if e[2] == "handoff"} <= {(TRIAGE, BILLING, "handoff")}
    finally:
        store.close()
    assert not missing, f"{len(missing)} of {len(every)} runs lack the hand-off triage -> billing"
