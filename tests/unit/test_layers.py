"""The import-layering contract of docs/architecture.md, enforced.

Every ``import`` and ``from ... import`` in ``src/flightlog`` counts, including those made
inside functions (a deferred import is still a dependency: it only hides it from import
time). A module may import from its own component and from components of lower layers. The
imports that break this today are listed in ``KNOWN`` with a reason: a ratchet. A new
violation fails ``test_no_new_layer_violations``; a listed one that is gone fails
``test_known_violations_still_exist`` until its line is deleted, so the list only shrinks.

The same map is an import-linter layers contract in pyproject.toml (``lint-imports`` runs it
in CI and in editors); the tests at the end check that it, this file and docs/architecture.md
state the same layers and the same exceptions, and run it.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

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
                "owners",
                "payload",
                "lineage",
                "status",
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
KNOWN: dict[tuple[str, str], str] = {}


# Entries of KNOWN that may be absent while work that removes them is merging. Empty.
SETTLING: frozenset[tuple[str, str]] = frozenset()


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


# -- the same map as an import-linter contract (pyproject.toml), and in the docs ------------


def _contract() -> dict[str, Any]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    found: dict[str, Any] = next(c for c in contracts if c.get("id") == "layers")
    return found


def test_the_import_linter_contract_states_this_map() -> None:
    """pyproject.toml's layers contract lists the layers of ``LAYERS`` (top to bottom there)
    and ignores exactly the imports of ``KNOWN``."""
    contract = _contract()
    stated = [
        {m.strip().removeprefix("flightlog.") for m in re.split(r"[:|]", layer)}
        for layer in reversed(contract["layers"])
    ]
    # The package's own __init__ (the public SDK surface) is the root: import-linter cannot
    # place it in a layer; the checks above cover it.
    want = [set(comps) - {"flightlog"} for _name, comps in LAYERS]
    assert stated == want, "[tool.importlinter] layers differ from LAYERS in this file"
    ignored = {tuple(i.split(" -> ")) for i in contract.get("ignore_imports", [])}
    assert ignored == set(KNOWN), "[tool.importlinter] ignore_imports differ from KNOWN"


def test_the_docs_state_this_map() -> None:
    """docs/architecture.md's table lists the layers of ``LAYERS``, bottom to top."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\w+) \| ([^|]+) \|", doc, flags=re.M)
    table = [(name, set(re.findall(r"`([\w_]+)`", comps))) for name, comps in rows]
    table = [(name, comps) for name, comps in table if comps]
    assert table == [(name, set(comps)) for name, comps in LAYERS]


def test_the_import_linter_contract_holds() -> None:
    from importlinter.cli import lint_imports

    code = lint_imports(config_filenames=(str(REPO / "pyproject.toml"),), no_cache=True)
    assert code == 0, "lint-imports found imports that break docs/architecture.md (see above)"
