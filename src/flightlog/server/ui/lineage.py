"""The lineage of a run as an inline SVG: steps as nodes in index order (top to bottom,
indented by nesting), parent edges as elbows on the left, data and handoff edges as arcs
on the right; the root cause and the failure point highlighted. Plain markup, no script."""

from __future__ import annotations

from typing import Any

from flightlog.server.ui._html import e

MAX_NODES = 300
ROW, BOX_H, BOX_W, INDENT, LEFT, TOP = 34, 24, 270, 16, 14, 10
LABEL_CHARS = 38


def depths(steps: list[Any]) -> dict[str, int]:
    """Nesting depth of every step (0 for roots), robust to missing parents and cycles."""
    parent = {s.id: s.parent_id for s in steps}
    out: dict[str, int] = {}
    for s in steps:
        d, cur, seen = 0, s.parent_id, {s.id}
        while cur in parent and cur not in seen and d < 64:
            seen.add(cur)
            d += 1
            cur = parent[cur]
        out[s.id] = d
    return out


def lineage_svg(
    steps: list[Any],
    edges: list[Any],
    *,
    root_cause: str | None = None,
    failure_point: str | None = None,
) -> str:
    shown = sorted(steps, key=lambda s: s.index)[:MAX_NODES]
    if not shown:
        return "<p class='muted'>No steps recorded.</p>"
    depth = depths(shown)
    row = {s.id: i for i, s in enumerate(shown)}
    max_depth = min(max(depth.values()), 12)

    def x(sid: str) -> int:
        return LEFT + min(depth[sid], 12) * INDENT

    def y(sid: str) -> int:
        return TOP + row[sid] * ROW

    right = LEFT + max_depth * INDENT + BOX_W
    arcs: list[str] = []
    # Parent edges: from each step's parent_id, plus any stored as edges (drawn once).
    parents = {(s.parent_id, s.id) for s in shown if s.parent_id in row}
    parents |= {(ed.source, ed.target) for ed in edges if ed.kind == "parent"}
    for src, dst in sorted(parents, key=lambda p: (row.get(p[1], 0), row.get(p[0], 0))):
        if src not in row or dst not in row or src == dst:
            continue
        x1, y2 = x(src) + 6, y(dst) + BOX_H // 2
        arcs.append(
            f"<path class='e-parent' d='M{x1} {y(src) + BOX_H} V{y2} H{x(dst)}' "
            "marker-end='url(#arrow-p)'><title>parent</title></path>"
        )
    reach = 0
    for ed in edges:
        if ed.source not in row or ed.target not in row or ed.source == ed.target:
            continue
        if ed.kind == "parent":
            continue
        y1, y2 = y(ed.source) + BOX_H // 2, y(ed.target) + BOX_H // 2
        x1, x2 = x(ed.source) + BOX_W, x(ed.target) + BOX_W
        bulge = 26 + 10 * min(abs(row[ed.target] - row[ed.source]), 20)
        reach = max(reach, bulge)
        cx = max(x1, x2) + bulge
        cls = "e-handoff" if ed.kind == "handoff" else "e-data"
        tip = f"{ed.kind} ({ed.evidence}{', ' + ed.detail if ed.detail else ''})"
        arcs.append(
            f"<path class='{cls}' d='M{x1} {y1} C{cx} {y1} {cx} {y2} {x2 + 2} {y2}' "
            f"marker-end='url(#arrow-d)'><title>{e(tip)}</title></path>"
        )
    nodes: list[str] = []
    for s in shown:
        role = " ".join(
            r for r, hit in (("rc", s.id == root_cause), ("fp", s.id == failure_point)) if hit
        )
        role = role or ("err" if s.status == "error" else "")
        label = f"{s.index} {s.name}" + (f" · {s.agent}" if s.agent else "")
        if len(label) > LABEL_CHARS:
            label = label[: LABEL_CHARS - 1] + "…"
        what = {
            "rc": " — root cause",
            "fp": " — failure point",
            "err": " — error",
            "rc fp": " — root cause and failure point",
        }.get(role, "")
        tip = f"step {s.index}: {s.name} ({s.kind}, agent {s.agent or '-'}){what}"
        nodes.append(
            f"<a href='#step-{s.index}'><g class='node {role}' data-step='{s.index}'>"
            f"<title>{e(tip)}</title><rect x='{x(s.id)}' y='{y(s.id)}' width='{BOX_W}' "
            f"height='{BOX_H}' "
            f"rx='5'/><text x='{x(s.id) + 8}' y='{y(s.id) + 16}'>{e(label)}</text></g></a>"
        )
    width = right + reach + 20
    height = TOP * 2 + len(shown) * ROW
    more = (
        f"<p class='muted'>Showing the first {MAX_NODES} of {len(steps)} steps.</p>"
        if len(steps) > MAX_NODES
        else ""
    )
    style = (
        "<style>.node rect{fill:#fff;stroke:#8a93a6}.node.rc rect{fill:#ffe3cc;stroke:#c55a00;"
        "stroke-width:2}.node.fp rect{fill:#fde0e0;stroke:#b00;stroke-width:2}"
        ".node.rc.fp rect{fill:#ffe3cc;stroke:#b00;stroke-width:3}"
        ".node.err rect{stroke:#b00}.e-parent{fill:none;stroke:#a9b0bf}"
        ".e-data{fill:none;stroke:#2456b3;stroke-width:1.4}"
        ".e-handoff{fill:none;stroke:#7a3fb0;stroke-dasharray:4 3}</style>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' class='lineage' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='lineage of {len(shown)} steps'>{style}<defs>"
        "<marker id='arrow-d' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
        "markerHeight='7' orient='auto'><path d='M0 0L10 5L0 10z' fill='#2456b3'/></marker>"
        "<marker id='arrow-p' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='6' "
        "markerHeight='6' orient='auto'><path d='M0 0L10 5L0 10z' fill='#a9b0bf'/></marker>"
        f"</defs>{''.join(arcs)}{''.join(nodes)}</svg>"
        "<p class='muted'>Blue arcs: data (an output reached a later input); grey elbows: "
        "parent → child; dashed: handoff. Orange: root cause; red: failure point.</p>"
        f"{more}"
    )
