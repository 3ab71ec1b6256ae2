"""One lineage engine for every front door: which earlier step's output reached a later
step's input.

The SDK's background writer feeds it steps as they end (``ContentIndex``); OTLP ingestion, the
server's late spans and anything else that holds stored steps replay them through the same
index in order of end (``infer_data_edges``), so the same agent gets the same edges whichever
way it was recorded. Evidence, strongest first:

- ``identity`` (SDK only, on the caller's thread: ``flightlog.sdk.lineage.IdentityIndex``):
  the very object a step returned, or one of its elements, is passed to a later step. An
  empty list returned by a tool and handed on links like any other object;
- ``declared``: a tool step's call id (``gen_ai.tool.call.id``, OpenInference
  ``tool_call.id``, Vercel ``ai.toolCall.id``) appears in a later step's input, as in the
  tool-result message of the next LLM call. This links outputs too generic to be evidence by
  content, such as a tool that returned ``[]``;
- ``content``: the input, an argument of it, or a value nested up to two levels inside one
  (framework state wrappers such as ``{"args": [...], "kwargs": {...}}``, message lists) has
  the same canonical JSON as an earlier output or one of its elements. Values whose JSON is
  shorter than ``MIN_CONTENT_BYTES`` (``3``, ``true``, ``"ok"``) are too common to count;
- ``substring``: an earlier output string of at least ``MIN_SUBSTRING`` characters appears
  inside a string of the input (prompt templating, LLM prompts).

Only outputs of steps that ended before the consuming step started count, and what a step
merely passed through from its own input is not its output; when several steps produced the
same value, the edge comes from the one that ended last. ``detail`` names the argument
(top-level key of the input) the value reached, when the input is an object. State is bounded
per run.

Hand-offs between agents that the trace declares (OpenInference graph nodes) are linked here
too (``handoff_edges``), over whatever steps of the run are at hand.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any, Protocol

import orjson

from flightlog.model import Edge

MIN_CONTENT_BYTES = 8
MIN_SUBSTRING = 16
MIN_CALL_ID = 6  # shorter tool-call ids are not distinctive enough to search for
MAX_ELEMENTS = 64  # elements of a container looked at, per level
MAX_STRINGS = 256  # output strings remembered per run for substring matching
MAX_HASHES = 4096  # output content hashes remembered per run
MAX_INDEXED_BYTES = 64 * 1024  # larger outputs are not indexed for content/substring lineage
# Where instrumentations put a tool call's id on the tool's span (OTel GenAI, OpenInference,
# Vercel AI SDK).
TOOL_CALL_ID_KEYS = ("gen_ai.tool.call.id", "tool_call.id", "ai.toolCall.id")
# The detail of a data edge declared by a tool call's id: this, then the id.
CALL_DETAIL = "tool call "
# OpenInference graph nodes (``flightlog.otel.conventions``): an agent span's node, and the
# node that handed over to it.
OI_GRAPH_NODE_ID = "graph.node.id"
OI_GRAPH_NODE_PARENT_ID = "graph.node.parent_id"


def _canon(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _json_text(s: str) -> bytes:
    """``s`` as it appears inside canonical JSON, without its quotes: its UTF-8 bytes when
    nothing in it is escaped (printable, no quote, no backslash: most text)."""
    if s.isprintable() and '"' not in s and "\\" not in s:
        return s.encode()
    return _canon(s)[1:-1]


_blake2b = hashlib.blake2b


def _h(data: bytes) -> bytes:
    return _blake2b(data, digest_size=16).digest()


class ContentIndex:
    """Outputs of a run's steps by content hash and as strings, on the writer's side.

    Each output remembers when its step ended: a later step can only have consumed an
    output that existed when it started, which rules out a child "feeding" its enclosing
    parent and two concurrent steps feeding each other. ``nbytes`` approximates the memory
    held, so the writer can bound it across runs.
    """

    __slots__ = ("hashes", "strings", "nbytes")

    def __init__(self) -> None:
        self.hashes: OrderedDict[bytes, tuple[str, int]] = OrderedDict()
        self.strings: OrderedDict[bytes, tuple[str, int]] = OrderedDict()
        self.nbytes = 0

    def add_output(
        self,
        step_id: str,
        output_json: bytes | None,
        ended_ns: int,
        input_json: bytes | None = None,
    ) -> None:
        """Remember a step's output; what it merely passed through from its input is skipped."""
        if not output_json or len(output_json) > MAX_INDEXED_BYTES:
            return
        try:
            value = orjson.loads(output_json)
        except orjson.JSONDecodeError:
            return
        t = type(value)  # parsed JSON: exactly dict, list, str, int, float, bool or None
        if t is dict and value.get("$truncated") is True:
            return  # a truncated value's preview is not the value
        # What the step merely passed through from its own input is not its output. Canonical
        # JSON is deterministic, so an equal value appears verbatim inside the input's JSON;
        # a substring test is cheap and errs only towards recording no edge.
        inp = input_json if input_json and len(input_json) <= MAX_INDEXED_BYTES * 4 else b""
        src = (step_id, ended_ns)
        self._add_hash(output_json, src, inp)
        if t is list or t is dict:
            for v in value[:MAX_ELEMENTS] if t is list else islice(value.values(), MAX_ELEMENTS):
                self._add_hash(_canon(v), src, inp)
        strings = self.strings
        for s in _strings(value, 0):
            if len(s) < MIN_SUBSTRING:
                continue
            # Kept as it appears inside JSON text (escaped, without quotes), so an input is
            # searched as one text however deeply the string is nested in it.
            needle = _json_text(s)
            if inp and needle in inp:
                continue
            if needle in strings:
                strings.move_to_end(needle)
            else:
                self.nbytes += len(needle) + 64
                if len(strings) >= MAX_STRINGS:
                    old, _ = strings.popitem(last=False)
                    self.nbytes -= len(old) + 64
            strings[needle] = src

    def _add_hash(self, data: bytes, src: tuple[str, int], passed_from: bytes) -> None:
        if len(data) < MIN_CONTENT_BYTES or (passed_from and data in passed_from):
            return
        key = _h(data)
        hashes = self.hashes
        if key in hashes:
            hashes.move_to_end(key)
        else:
            self.nbytes += 96
            if len(hashes) >= MAX_HASHES:
                hashes.popitem(last=False)
                self.nbytes -= 96
        hashes[key] = src

    def sources(
        self, input_json: bytes | None, exclude: str, started_ns: int
    ) -> list[tuple[str, str, str | None]]:
        """(source step id, evidence, argument) for inputs that carry earlier outputs.

        Only outputs of steps that ended before the consuming step started count. The
        argument is the input's top-level key the value reached (None when the input is not
        an object).
        """
        hashes, strings = self.hashes, self.strings
        if not input_json or (not hashes and not strings):
            return []
        if len(input_json) > MAX_INDEXED_BYTES * 4:
            return []
        try:
            value = orjson.loads(input_json)
        except orjson.JSONDecodeError:
            return []
        is_dict = type(value) is dict  # parsed JSON: exactly a dict when an object
        if is_dict and value.get("$truncated") is True:
            return []
        arguments: list[tuple[str | None, Any]] = (
            list(value.items()) if is_dict else [(None, value)]
        )
        found: list[tuple[str, str, str | None]] = []
        seen: set[tuple[str, str | None]] = set()
        if is_dict and hashes:
            # The whole input may be an earlier output (a step handing its result on).
            whole = hashes.get(_h(input_json)) if len(input_json) >= MIN_CONTENT_BYTES else None
            if whole is not None and whole[0] != exclude and whole[1] <= started_ns:
                seen.add((whole[0], None))
                found.append((whole[0], "content", None))
        whole_text = len(arguments) == 1 and not is_dict
        for name, arg in arguments:
            canon: bytes | None = None
            if hashes:
                values = _values(arg)
                canon = values[0]
                for data in values:
                    if len(data) < MIN_CONTENT_BYTES:
                        continue
                    src = hashes.get(_h(data))
                    if src is None:
                        continue
                    source, ended_ns = src
                    if source == exclude or ended_ns > started_ns or (source, name) in seen:
                        continue
                    seen.add((source, name))
                    found.append((source, "content", name))
            if strings:
                text = input_json if whole_text else canon if canon is not None else _canon(arg)
                for needle, (source, ended_ns) in strings.items():
                    if needle not in text:
                        continue
                    if source == exclude or ended_ns > started_ns or (source, name) in seen:
                        continue
                    seen.add((source, name))
                    found.append((source, "substring", name))
        return found


def _values(value: Any) -> list[bytes]:
    """Canonical JSON of a value and of the values nested one and two levels inside it."""
    out = [_canon(value)]
    level = [value]
    for _ in range(2):
        nxt: list[Any] = []
        for v in level:
            t = type(v)
            if t is list:
                nxt.extend(v[:MAX_ELEMENTS])
            elif t is dict:
                nxt.extend(islice(v.values(), MAX_ELEMENTS))
        if not nxt:
            break
        out.extend(map(_canon, nxt))
        level = nxt
    return out


def _strings(value: Any, depth: int) -> list[str]:
    """String leaves of a JSON value (bounded)."""
    t = type(value)
    if t is str:
        return [value]
    if depth >= 4:
        return []
    if t is list:
        items: Any = value if len(value) <= MAX_ELEMENTS else value[:MAX_ELEMENTS]
    elif t is dict:
        items = value.values()
        if len(value) > MAX_ELEMENTS:
            items = list(items)[:MAX_ELEMENTS]
    else:
        return []
    out: list[str] = []
    for v in items:
        tv = type(v)
        if tv is str:
            out.append(v)
        elif tv is list or tv is dict:
            out.extend(_strings(v, depth + 1))
    return out[:MAX_ELEMENTS]


# -- the batch form ------------------------------------------------------------------------------
class StepLike(Protocol):
    """What lineage needs of a step (``model.Step``, ``store.StepOutline``)."""

    @property
    def run_id(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def started_ns(self) -> int: ...
    @property
    def ended_ns(self) -> int | None: ...
    @property
    def input_hash(self) -> str | None: ...
    @property
    def output_hash(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...


def tool_call_id(step: StepLike) -> str | None:
    """The id of the tool call a step carried out, when its instrumentation recorded one."""
    attrs = step.attributes
    for key in TOOL_CALL_ID_KEYS:
        v = attrs.get(key)
        if isinstance(v, str) and len(v) >= MIN_CALL_ID:
            return v
    return None


def infer_data_edges(
    steps: Sequence[StepLike],
    payloads: Mapping[str, bytes],
    new_ids: set[str] | None = None,
) -> list[Edge]:
    """Data edges between ``steps``, replaying them in order of end through one
    ``ContentIndex`` (what the SDK's writer does while recording).

    ``payloads`` maps hash -> canonical JSON bytes. With ``new_ids``, only edges whose source
    or target is one of those steps are returned (the others were found when they arrived).
    """
    last = 1 << 63
    ordered = sorted(
        steps,
        key=lambda s: (s.ended_ns if s.ended_ns is not None else last, s.started_ns, s.id),
    )
    index = ContentIndex()
    calls: dict[str, tuple[str, int]] = {}  # tool-call id -> (step id, ended)
    edges: list[Edge] = []
    final = len(ordered) - 1
    # With ``new_ids``, an edge needs a new step at one end: until a new step is in the
    # index, the inputs of old steps need not be looked up.
    fresh = new_ids if new_ids is not None else set()
    new_indexed = new_ids is None
    for i, t in enumerate(ordered):
        inp = payloads.get(t.input_hash) if t.input_hash else None
        if new_indexed or t.id in fresh:
            _edges_into(t, inp, index, calls, new_ids, edges)
        if t.ended_ns is not None and i < final:  # (the last step's output feeds no one)
            out = payloads.get(t.output_hash) if t.output_hash else None
            index.add_output(t.id, out, t.ended_ns, inp)
            call = tool_call_id(t)
            if call is not None:
                calls[call] = (t.id, t.ended_ns)
            new_indexed = new_indexed or t.id in fresh
    return edges


def _edges_into(
    t: StepLike,
    inp: bytes | None,
    index: ContentIndex,
    calls: dict[str, tuple[str, int]],
    new_ids: set[str] | None,
    edges: list[Edge],
) -> None:
    """The data edges into step ``t`` from the outputs indexed so far."""
    found = index.sources(inp, t.id, t.started_ns)
    if inp and calls:
        text = inp.decode("utf-8", errors="replace")
        taken = {src for src, _, _ in found}
        for cid, (source, ended_ns) in calls.items():
            if source not in taken and ended_ns <= t.started_ns and f'"{cid}"' in text:
                taken.add(source)
                found.append((source, "declared", f"{CALL_DETAIL}{cid}"))
    seen: set[str] = set()
    for source, evidence, detail in found:
        if source in seen or source == t.id:
            continue
        seen.add(source)
        if new_ids is None or source in new_ids or t.id in new_ids:
            edges.append(Edge(t.run_id, source, t.id, "data", evidence, detail))


def handoff_edges(steps: Iterable[StepLike]) -> list[Edge]:
    """Hand-offs between agents that OpenInference declares: an agent span whose
    ``graph.node.parent_id`` names the graph node (``graph.node.id``) that handed over to it
    gets a ``handoff`` edge from the latest such node that started before it. Called per
    request, again over a run's stored steps and the batch's (``server.ingest.derive``),
    since the two spans may arrive apart, and by the store under the run's lock when
    another server stored spans of the run meanwhile (``store._sql.relineage``)."""
    steps = list(steps)
    nodes: dict[str, list[StepLike]] = defaultdict(list)
    for st in steps:
        node = st.attributes.get(OI_GRAPH_NODE_ID)
        if node is not None:
            nodes[str(node)].append(st)
    edges = []
    for st in steps:
        parent = st.attributes.get(OI_GRAPH_NODE_PARENT_ID)
        if parent is None:
            continue
        before = [p for p in nodes.get(str(parent), []) if p.started_ns <= st.started_ns]
        if before and st.id not in {p.id for p in before}:
            src = max(before, key=lambda p: (p.started_ns, p.id))
            edges.append(
                Edge(
                    run_id=st.run_id,
                    source=src.id,
                    target=st.id,
                    kind="handoff",
                    evidence="declared",
                    detail=OI_GRAPH_NODE_PARENT_ID,
                )
            )
    return edges


def inferred_edge(edge: Edge) -> bool:
    """Whether ``edge`` is one this module infers (``infer_data_edges``, ``handoff_edges``)
    rather than one a span declared itself (an OpenTelemetry span link, evidence ``link``; a
    Flightlog edge event): the former a writer that sees more of the run's steps infers
    again (``store._sql.relineage``), the latter stay as sent."""
    if edge.kind == "handoff":
        return edge.evidence == "declared" and edge.detail == OI_GRAPH_NODE_PARENT_ID
    if edge.kind != "data":
        return False
    if edge.evidence == "declared":
        return edge.detail is not None and edge.detail.startswith(CALL_DETAIL)
    return edge.evidence in ("content", "substring")
