"""The import-layering contract of docs/architecture.md, enforced.

Every ``import`` and ``from ... import`` in ``src/flightlog`` counts, including those made
inside functions (a deferred import is still a dependency: it only hides it from import
time). A module may import from its own component and from components of lower layers. The
imports that break this today are listed in ``KNOWN`` with a reason: a ratchet. A new
violation fails ``test_no_new_layer_violations``; a listed one that is gone fails
``test_known_violations_still_exist`` until its line is deleted, so the list only shrinks.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "flightlog"

# Bottom to top. A component is a subpackage (``store``) or a top-level module (``model``);
# ``flightlog`` is the package's own ``__init__`` (the public SDK surface). Components in one
# layer may import each other (no cycles: ``test_no_component_cycles``).
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "base",
        frozenset(
            {
                "errors",
                "model",
                "_json",
                "_format",
                "_durations",
                "_retry",
                "config",
                "payload",
                "lineage",
            }
        ),
    ),
    ("store", frozenset({"store"})),
    ("records", frozenset({"ledger", "otel", "privacy", "access"})),
    ("detect", frozenset({"detect"})),
    ("forensics", frozenset({"forensics"})),
    ("respond", frozenset({"respond"})),
    ("reliability", frozenset({"reliability"})),
    ("pipeline", frozenset({"pipeline"})),
    ("app", frozenset({"app"})),
    ("sdk", frozenset({"sdk", "flightlog"})),
    ("drills", frozenset({"drills"})),
    ("server", frozenset({"server"})),
    ("demo", frozenset({"demo"})),
    ("cli", frozenset({"cli", "__main__"})),
)

# (importing module, imported module) -> why it is allowed for now. Delete a line when the
# import is gone; never add one without a reason and a plan (docs/architecture.md).
KNOWN: dict[tuple[str, str], str] = {
    ("flightlog.forensics.actions", "flightlog.respond.config"): "a postmortem names owners "
    "from the routing configuration",
    ("flightlog.forensics.actions", "flightlog.respond.owners"): "a postmortem names owners "
    "from the routing configuration",
    ("flightlog.forensics.transcripts", "flightlog.pipeline"): "an imported transcript runs "
    "the run-end stages; the importer belongs above the pipeline",
    ("flightlog.otel.decode", "flightlog.forensics.status"): "decoding derives an ingested "
    "run's status; the pure status function belongs below both",
    ("flightlog.forensics.attribution", "flightlog.respond.owners"): "attribution names the "
    "owner of an ingested run's step from the owner rules; owner resolution belongs below both",
    ("flightlog.demo", "flightlog.cli.runs"): "the demo prints a run as flightlog show does; "
    "the renderer belongs below both",
}


# Entries of KNOWN that work merging now brings (the ingested-run status and owners): they may
# be absent. Empty this set once that work is merged.
SETTLING: frozenset[tuple[str, str]] = frozenset(
    {
        ("flightlog.otel.decode", "flightlog.forensics.status"),
        ("flightlog.forensics.attribution", "flightlog.respond.owners"),
    }
)


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(comp: str) -> int:
    for i, (_name, comps) in enumerate(LAYERS):
        if comp in comps:
            return i
    raise AssertionError(
        f"component {comp!r} is in no layer: place it in LAYERS (tests/unit/test_layers.py) "
        "and in docs/architecture.md"
    )


@cache
def modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".")
        if path.name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    known = modules()
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]


@cache
def imports() -> frozenset[tuple[str, str]]:
    """Every (importing module, imported module) within flightlog, at any depth of the code."""
    out = set()
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(module, path, node):
                    if target == "flightlog" or target.startswith("flightlog."):
                        out.add((module, target))
    return frozenset(out)


def violations() -> set[tuple[str, str]]:
    return {
        (a, b)
        for a, b in imports()
        if component(a) != component(b) and layer_of(component(a)) < layer_of(component(b))
    }


def test_every_component_has_a_layer_and_a_place_in_the_docs() -> None:
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    for module in modules():
        comp = component(module)
        layer_of(comp)
        assert f"`{comp}`" in doc, f"docs/architecture.md does not place `{comp}`"


def test_no_new_layer_violations() -> None:
    new = sorted(violations() - set(KNOWN))
    assert not new, "imports from a higher layer (docs/architecture.md):\n" + "\n".join(
        f"  {a} imports {b} ({LAYERS[layer_of(component(a))][0]} layer -> "
        f"{LAYERS[layer_of(component(b))][0]} layer)"
        for a, b in new
    )


def test_known_violations_still_exist() -> None:
    gone = sorted(set(KNOWN) - SETTLING - violations())
    assert not gone, "no longer imported: delete from KNOWN in tests/unit/test_layers.py:\n" + (
        "\n".join(f"  {a} -> {b}" for a, b in gone)
    )


def test_no_component_cycles() -> None:
    """Without the known exceptions, the components' import graph has no cycle."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in imports() - set(KNOWN):
        if component(a) != component(b):
            graph[component(a)].add(component(b))
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                raise AssertionError("import cycle between components: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_checker_sees_imports_inside_functions() -> None:
    """The web UI's --since parsing is imported inside a function: the checker sees it."""
    assert ("flightlog.server.ui.runs", "flightlog._durations") in imports()
