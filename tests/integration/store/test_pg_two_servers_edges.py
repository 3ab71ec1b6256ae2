"""Two ``flightlog serve`` processes on one PostgreSQL database receive spans of the same traces
at the same moment: each run's stored data edges are what one server receiving all its spans
would store.

Per trace, one server gets the root span and a tool call whose output is a sentence; the
other, at the same time, an LLM call that started after the tool ended, whose input quotes
that sentence. Each server infers the data edges its spans open with the spans it read
before writing; before the store inferred them again inside the write transaction, under the
run's row lock, when another server had stored spans of the run meanwhile, the edge
tool -> LLM was missing whenever both servers read before either committed. Real servers,
real OTLP/HTTP protobuf, real PostgreSQL; rounds alternate which server gets which half.
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
ROOT, TOOL, LLM = "b000000000000001", "b000000000000002", "b000000000000003"


def _sentence(trace: str) -> str:
    return f"Policy {trace[:12]} covers water damage up to 25000 euros"


def _halves(traces: list[str]) -> tuple[bytes, bytes]:
    first = [
        s
        for t in traces
        for s in (
            span(t, ROOT, None, "AGENT", 0, 1000, **{"input.value": f"claim {t[:12]}"}),
            span(
                t,
                TOOL,
                ROOT,
                "TOOL",
                100,
                300,
                **{"input.value": f"lookup {t[-6:]}", "output.value": _sentence(t)},
            ),
        )
    ]
    second = [
        span(
            t,
            LLM,
            ROOT,
            "LLM",
            400,
            900,
            **{"input.value": f"Summarise for the client: {_sentence(t)}. Be brief."},
        )
        for t in traces
    ]
    return body(first), body(second)


def test_two_servers_store_the_edges_one_server_would(
    servers: list[Server], two_servers_pg_url: str
) -> None:
    from flightlog.store import open_store

    every: list[str] = []
    for n in range(ROUNDS):
        traces = [f"e{n + 1:07x}{i:024x}" for i in range(TRACES)]  # this test's own
        every += traces
        first, second = _halves(traces)
        pair = [(servers[n % 2], first), (servers[(n + 1) % 2], second)]
        post_at_once(pair)

    store = open_store(two_servers_pg_url, readonly=True)
    try:
        steps = store.step_outlines(every)
        assert all(len(steps.get(t, [])) == 3 for t in every)
        missing = []
        for trace in every:
            edges = {(e.source, e.target, e.kind) for e in store.get_record(trace).edges}
            if (TOOL, LLM, "data") not in edges:
                missing.append(trace)
    finally:
        store.close()
    assert not missing, f"{len(missing)} of {len(every)} runs lack the edge tool -> LLM"
