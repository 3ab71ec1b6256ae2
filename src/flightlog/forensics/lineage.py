"""The lineage graph of one run: which steps could have influenced which.

Edges come from ``store.get_edges`` (data and handoff edges) and from steps' ``parent_id``.
Walking back from a step follows: sources of data/handoff edges into it, its parent, and for
any step whose *output* fed something, that step's children (its output derives from theirs).
Cycles and edges naming unknown steps are tolerated (and reported), never followed forever.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from flightlog.model import Edge, Step


@dataclass(slots=True)
class Lineage:
    steps: dict[str, Step]
    # target -> [(source, edge kind)]
    sources: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    data_edges: int = 0

    @classmethod
    def build(cls, steps: list[Step], edges: list[Edge]) -> Lineage:
        g = cls(steps={s.id: s for s in steps})
        for s in steps:
            if s.parent_id and s.parent_id in g.steps and s.parent_id != s.id:
                g.children.setdefault(s.parent_id, []).append(s.id)
        unknown = 0
        for e in edges:
            if e.kind == "parent":
                continue
            if e.source not in g.steps or e.target not in g.steps:
                unknown += 1
                continue
            if e.source == e.target:
                g.problems.append(f"edge from step {g.steps[e.source].index} to itself ignored")
                continue
            g.sources.setdefault(e.target, []).append((e.source, e.kind))
            g.data_edges += 1
        if unknown:
            g.problems.append(f"{unknown} lineage edge(s) name steps not in this run; ignored")
        if g.has_cycle():
            g.problems.append("the recorded lineage contains a cycle; walked it once")
        return g

    def predecessors(self, step_id: str, *, output_used: bool) -> list[tuple[str, str]]:
        """Steps one hop upstream of ``step_id`` with the kind of hop."""
        out = list(self.sources.get(step_id, []))
        s = self.steps.get(step_id)
        if s and s.parent_id and s.parent_id in self.steps and s.parent_id != step_id:
            out.append((s.parent_id, "parent"))
        if output_used:
            out.extend((c, "child") for c in self.children.get(step_id, []))
        return out

    def walk_back(self, start: str) -> dict[str, tuple[str | None, str, int]]:
        """Every step upstream of ``start``: id -> (next step toward start, hop kind, hops)."""
        seen: dict[str, tuple[str | None, str, int]] = {start: (None, "self", 0)}
        queue: deque[tuple[str, bool]] = deque([(start, False)])
        start_step = self.steps[start]
        while queue:
            node, output_used = queue.popleft()
            for prev, kind in self.predecessors(node, output_used=output_used):
                if prev in seen:
                    continue
                p = self.steps[prev]
                # A child that started after the failure surfaced cannot have caused it.
                if kind == "child" and p.started_ns > start_step.started_ns and prev != start:
                    continue
                seen[prev] = (node, kind, seen[node][2] + 1)
                # An enclosing parent does not pass its children's outputs on to this step;
                # anything that fed us by data (or is our own child) passes its inputs' faults.
                queue.append((prev, kind in ("data", "handoff", "child")))
        # The failure point's own descendants (the fault may be inside it).
        stack = list(self.children.get(start, []))
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            parent = self.steps[c].parent_id or start
            seen[c] = (parent, "child", seen.get(parent, (None, "", 0))[2] + 1)
            stack.extend(self.children.get(c, []))
        return seen

    def path(self, walk: dict[str, tuple[str | None, str, int]], root: str) -> list[str]:
        """Step ids from ``root`` to the walk's start along the recorded hops."""
        out = [root]
        node = root
        for _ in range(len(walk) + 1):
            nxt = walk.get(node, (None, "", 0))[0]
            if nxt is None:
                break
            out.append(nxt)
            node = nxt
        return out

    def has_cycle(self) -> bool:
        color: dict[str, int] = {}
        for start in self.steps:
            if start in color:
                continue
            stack = [(start, iter([s for s, _ in self.sources.get(start, [])]))]
            color[start] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    color[node] = 2
                    stack.pop()
                elif color.get(nxt) == 1:
                    return True
                elif nxt not in color:
                    color[nxt] = 1
                    stack.append((nxt, iter([s for s, _ in self.sources.get(nxt, [])])))
        return False
