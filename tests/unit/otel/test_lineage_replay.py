"""``infer_data_edges`` with ``new_ids`` (a stored run replayed when some of its spans arrive)
returns exactly the edges of the whole replay that touch a new step, whichever steps are new:
the shortcuts it takes (old steps' inputs not looked up until a new step is indexed, the last
step's output not indexed) change nothing."""

from __future__ import annotations

import random
from pathlib import Path

from flightlog.lineage import handoff_edges, infer_data_edges, inferred_edge
from flightlog.model import Edge
from flightlog.otel.decode import decode

DATA = Path(__file__).resolve().parents[2] / "data" / "otlp"


def test_replay_with_new_steps_is_the_whole_replay_filtered() -> None:
    rng = random.Random(13)
    checked = with_edges = 0
    for path in sorted(DATA.glob("*/*.json")):
        result = decode(path.read_bytes(), "application/json", infer_edges=False)
        data = {p.hash: p.data for p in result.batch.payloads}
        runs: dict[str, list] = {}
        for s in result.batch.steps:
            runs.setdefault(s.run_id, []).append(s)
        for steps in runs.values():
            whole = infer_data_edges(steps, data)
            with_edges += bool(whole)
            ids = [s.id for s in steps]
            for _ in range(6):
                new = set(rng.sample(ids, rng.randint(0, len(ids))))
                want = [e for e in whole if e.source in new or e.target in new]
                assert infer_data_edges(steps, data, new) == want
                checked += 1
    assert checked > 100 and with_edges > 10


def test_every_edge_lineage_infers_is_told_from_those_spans_declare() -> None:
    """``inferred_edge`` (what the store may infer again over more steps, ``relineage``)
    holds for every data edge and hand-off the recorded traces yield, and not for edges
    spans declare (span links, edge events)."""
    evidence: set[tuple[str, str]] = set()
    for path in sorted(DATA.glob("*/*.json")):
        result = decode(path.read_bytes(), "application/json", infer_edges=False)
        data = {p.hash: p.data for p in result.batch.payloads}
        runs: dict[str, list] = {}
        for s in result.batch.steps:
            runs.setdefault(s.run_id, []).append(s)
        for steps in runs.values():
            for e in [*infer_data_edges(steps, data), *handoff_edges(steps)]:
                assert inferred_edge(e), e
                evidence.add((e.kind, e.evidence))
    assert {("data", "content"), ("data", "substring"), ("data", "declared")} <= evidence
    assert ("handoff", "declared") in evidence
    run, a, b = "1" * 32, "a" * 16, "b" * 16
    assert not inferred_edge(Edge(run, a, b, "data", "link", "follows_from"))  # a span link
    assert not inferred_edge(Edge(run, a, b, "handoff", "declared", None))  # an edge event
    assert not inferred_edge(Edge(run, a, b, "data", "declared", None))
