"""The web UI's renderers on their own: the lineage SVG, payload previews, escaping."""

from __future__ import annotations

import re

import orjson

from flightlog.model import Edge, Step
from flightlog.server.ui._html import PREVIEW, e
from flightlog.server.ui.lineage import MAX_NODES, depths, lineage_svg
from flightlog.server.ui.run import pretty

RUN = "a" * 32


def step(i: int, parent: int | None = None, name: str | None = None) -> Step:
    return Step(
        run_id=RUN,
        id=f"{i:016x}",
        name=name or f"s{i}",
        kind="tool",
        index=i,
        started_ns=i,
        ended_ns=i + 1,
        parent_id=f"{parent:016x}" if parent else None,
    )


def test_svg_has_a_node_per_step_and_an_arrow_per_edge() -> None:
    steps = [step(1), step(2, 1), step(3, 1), step(4)]
    edges = [
        Edge(RUN, steps[1].id, steps[2].id, "data", "content"),
        Edge(RUN, steps[2].id, steps[3].id, "handoff", "declared"),
        Edge(RUN, steps[0].id, steps[1].id, "parent", "parent"),  # also a parent_id
        Edge(RUN, steps[0].id, "f" * 16, "data", "content"),
    ]  # to no step: skipped
    svg = lineage_svg(steps, edges, root_cause=steps[1].id, failure_point=steps[3].id)
    assert svg.count("<g class='node") == 4
    assert svg.count("class='e-parent'") == 2 and svg.count("class='e-data'") == 1
    assert svg.count("class='e-handoff'") == 1
    assert "<g class='node rc' data-step='2'>" in svg
    assert "<g class='node fp' data-step='4'>" in svg
    # nodes top to bottom in index order; children indented
    ys = [int(y) for y in re.findall(r"<rect x='\d+' y='(\d+)'", svg)]
    xs = [int(x) for x in re.findall(r"<rect x='(\d+)'", svg)]
    assert ys == sorted(ys) and xs[1] == xs[2] > xs[0] == xs[3]


def test_svg_escapes_names_and_survives_cycles_and_size() -> None:
    evil = "<script>alert(1)</script>"
    a, b = step(1, 2, name=evil), step(2, 1)  # a parent cycle
    assert depths([a, b]) == {a.id: 1, b.id: 1}  # stops at the first repeat
    svg = lineage_svg([a, b], [])
    assert evil not in svg and e(evil)[:20] in svg
    many = [step(i) for i in range(1, MAX_NODES + 50)]
    big = lineage_svg(many, [])
    assert big.count("<g class='node") == MAX_NODES and "Showing the first" in big
    assert "No steps recorded" in lineage_svg([], [])


def test_payload_preview_is_pretty_escaped_and_capped() -> None:
    raw = orjson.dumps({"b": "<b>x</b>", "a": [1, 2]})
    out = pretty(raw, "h" * 64)
    assert "&lt;b&gt;x&lt;/b&gt;" in out and "<b>x</b>" not in out
    assert "\n  &quot;a&quot;" in out  # indented JSON
    long = pretty(orjson.dumps("y" * (PREVIEW * 3)), "h" * 64)
    assert long.count("y") <= PREVIEW and "more characters" in long
    assert "/api/v1/payloads/" + "h" * 64 in long
    assert "not stored" in pretty(None, "h" * 64)
    assert "&lt;oops" in pretty(b"<oops not json", "h" * 64)
