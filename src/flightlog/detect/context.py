"""What a detector sees: one run, its decoded payloads, and the workflow's successful history.

``RunContext`` wraps a ``RunRecord`` and decodes step inputs and outputs on demand.
``History`` holds, for one workflow, samples of every step (by name) from its successful runs,
so detectors can say "empty where it is usually not" or "a shape never seen before".

What detectors compare with is kept as incremental statistics (``Baseline``): per baseline key
(a step's signature, role or name) the counts, sorted values and tallies the built-in
detectors read, computed once from the samples when first needed and then updated as runs
join and leave the history (``History.advanced``), never recomputed for every run. Histories
are cached per store (the cache lives as long as the store object and holds a bounded
number of workflows) and folded forward by the run-end pipeline as runs end.

Size: over 500 lines: ``RunContext``, ``History`` and ``Baseline`` share the decoded samples
and the per-store cache that folds runs forward; apart, the cache's invariants would span
modules.
"""

from __future__ import annotations

import bisect
import hashlib
import operator
import statistics
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from flightlog.detect.features import field_map, json_type, strings
from flightlog.model import Finding, Run, RunRecord, Step
from flightlog.store.base import RunQuery, StoreReader

T = TypeVar("T")

# How many of a workflow's most recent successful runs form its history.
HISTORY_RUNS = 50
_MISSING = object()
_UNREAD = object()
_USUAL_TYPE = ("usual_type",)  # Baseline.memo's key for ``usual_type``
_EMPTIED = ("emptied",)  # in ``_kept``'s ``removed``: some key lost all its samples


def decode(data: bytes | None) -> Any:
    """Canonical JSON bytes -> value; a capture-truncation marker stays a dict. A tool
    message envelope is read as what it carries (``unwrap``)."""
    if data is None:
        return _MISSING
    try:
        return unwrap(orjson.loads(data))
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace")


_TOOL_ROLES = ("tool", "function")


def unwrap(value: Any, depth: int = 0) -> Any:
    """What a tool message envelope carries: frameworks record a tool's result as the message
    they hand the model (LangChain's ``{"type": "tool", "data": {"content": ...}}``, chat
    ``{"role": "tool", "content": ...}``), with the result as JSON text inside. Detectors
    compare the result itself, so ``[]`` reads as an empty list, not as a message. Likewise
    a value recorded as JSON text (Traceloop's ``traceloop.entity.output`` of a function
    returning JSON) is read as the JSON it holds, and so is a lone content part or span
    event (``_lone``), an object in LangChain's serialised form (``_serialized_object``)
    and a callback's result recorded beside the call's keyword arguments
    (``_callback_output``)."""
    if isinstance(value, str):
        return _json_text(value)
    if isinstance(value, list):
        return _lone(value)
    if not isinstance(value, dict):
        return value
    if depth < 4:
        inner = _serialized_object(value)
        if inner is None:
            inner = _callback_output(value)
        if inner is not None:
            return unwrap(inner, depth + 1)
    kind = value.get("type", value.get("role"))
    if kind not in _TOOL_ROLES:
        return _tool_record(value)
    data = value.get("data")
    body: dict[str, Any] = data if isinstance(data, dict) else value
    if "content" not in body:
        return value
    content = body["content"]
    return _json_text(content) if isinstance(content, str) else content


def _lone(value: list[Any], depth: int = 0) -> Any:
    """What a list of one wrapper holds: a text content part (``[{"text": ...}]``,
    ``[{"type": "text", "text": ...}]``: Bedrock, Anthropic, OpenAI content parts) is its
    text; a GenAI span event recorded as the step's payload (``[{"event": "gen_ai.choice",
    "message": ...}]``, ``[{"event": "gen_ai.tool.message", "content": ...}]``: Strands
    Agents and others on the GenAI event conventions) is what it carries, read again."""
    if len(value) != 1 or not isinstance(value[0], dict) or depth > 2:
        return value
    item = value[0]
    text = item.get("text")
    if isinstance(text, str) and item.keys() <= {"text", "type"}:
        return _json_text(text) if item.get("type", "text") == "text" else value
    event = item.get("event")
    if not (isinstance(event, str) and event.startswith("gen_ai.")):
        return value
    for key in ("message", "content"):
        if key in item:
            inner = item[key]
            if isinstance(inner, list):
                return _lone(inner, depth + 1)
            return _json_text(inner) if isinstance(inner, str) else inner
    return value


def _serialized_object(value: dict[str, Any]) -> Any:
    """The constructor arguments of an object in LangChain's serialised form
    (``{"lc": 1, "type": "constructor", "id": [..., "ToolMessage"], "kwargs": {...}}``):
    what the object holds (a ``ToolMessage``'s ``content``, ``type``, ``tool_call_id``), so
    the message envelope inside reads as any other. None for any other value."""
    kwargs = value.get("kwargs")
    if value.get("type") == "constructor" and "lc" in value and isinstance(kwargs, dict):
        return kwargs
    return None


# What a callback records beside a call's result: the call's keyword arguments and run
# context (OpenLLMetry's LangChain callbacks: ``{"output": ..., "kwargs": {"tags": ...}}``).
_CALL_CONTEXT_KEYS = frozenset({"kwargs", "tags", "metadata"})


def _callback_output(value: dict[str, Any]) -> Any:
    """The result of a record holding a result (``output``, ``outputs``) beside nothing but
    the call's context (``kwargs``, ``tags``, ``metadata``); None for any other value."""
    if len(value) < 2 or len(value) > 4:
        return None
    found = [k for k in ("output", "outputs") if k in value]
    if len(found) != 1 or not value.keys() - {found[0]} <= _CALL_CONTEXT_KEYS:
        return None
    return value[found[0]]


# A tool's result recorded as a record that names the tool and carries what it returned
# (LlamaIndex's ``ToolOutput``: ``{"tool_name": ..., "raw_input": ..., "raw_output": ...,
# "blocks"/"content": ..., "is_error": ...}``), the result under the first of these keys; or
# as a record holding nothing but the result (Google ADK's ``{"result": ...}`` for a tool that
# returned anything but a dict).
_TOOL_NAME_KEYS = ("tool_name", "toolName")
_TOOL_RESULT_KEYS = ("raw_output", "rawOutput", "result", "output", "content")
_RESULT_ONLY_KEYS = ("result", "output")


def _tool_record(value: dict[str, Any]) -> Any:
    """The result a tool-result record carries, else the value as it is."""
    if len(value) == 1:
        key = next(iter(value))
        if key in _RESULT_ONLY_KEYS:
            result = value[key]
            return _json_text(result) if isinstance(result, str) else result
        return value
    if not any(isinstance(value.get(k), str) for k in _TOOL_NAME_KEYS):
        return value
    for key in _TOOL_RESULT_KEYS:
        if key in value:
            result = value[key]
            return _json_text(result) if isinstance(result, str) else result
    return value


def _json_text(text: str) -> Any:
    """An object or array written as JSON text, parsed; any other text as it is."""
    if text.lstrip()[:1] not in ("{", "["):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def is_capture_marker(value: Any) -> bool:
    """True for the marker the SDK stores instead of an over-size value."""
    return isinstance(value, dict) and value.get("$truncated") is True


def finding_id(run_id: str, step_id: str | None, detector: str, kind: str) -> str:
    """A stable id per (run, step, detector, kind): re-running a detector never duplicates."""
    key = f"{run_id}|{step_id or '-'}|{detector}|{kind}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(slots=True)
class StepSample:
    """One occurrence of a step in a successful run."""

    run_id: str
    output: Any
    _input: Any  # the decoded input, or _UNREAD until ``input`` decodes ``_input_raw``
    duration_ns: int | None
    attributes: dict[str, Any]
    model: str | None
    run_started_ns: int
    _fields: dict[str, Any] | None = None
    _input_text: str | None = None
    _counted: dict[str, tuple[Any, ...] | None] | None = None
    _input_raw: bytes | None = None

    @property
    def input(self) -> Any:
        """The step's input (``decode``d: the missing marker when not stored), decoded when
        first read (most samples' inputs never are)."""
        if self._input is _UNREAD:
            self._input = decode(self._input_raw)
            self._input_raw = None
        return self._input

    @property
    def present(self) -> bool:
        """Whether the sample recorded an output."""
        return self.output is not _MISSING and self.output is not None

    def fields(self) -> dict[str, Any]:
        """``features.field_map`` of the output, computed once (histories are reused)."""
        if self._fields is None:
            ok = self.output is not _MISSING and self.output is not None
            self._fields = field_map(self.output) if ok else {}
        return self._fields

    def input_text(self) -> str:
        """Every string in the input, joined (for "does the output echo the input")."""
        if self._input_text is None:
            self._input_text = "\n".join(strings(self.input, limit=2000))
        return self._input_text

    def counted(self, path: str) -> tuple[Any, ...] | None:
        """What the sample counts into a path's ``PathStats`` (see ``PathStats.update``), as a
        comparable tuple, computed once: None when it has no value there; else by the
        value's kind, ``("n", number)``, ``("s", text, length or 0.0, grounded or None)``,
        ``("b", bool)``, ``("l", length)``, ``("d", ((key, JSON type), ...))`` or ``("o",)``."""
        memo = self._counted
        if memo is None:
            memo = self._counted = {}
        else:
            hit = memo.get(path, _UNREAD)
            if hit is not _UNREAD:
                return hit  # type: ignore[return-value]
        out: tuple[Any, ...] | None = None
        if self.output is not _MISSING and self.output is not None:  # ``present``
            m = self._fields
            if m is None:
                m = self.fields()
            h = m.get(path, _UNREAD)
            if h is not _UNREAD:
                t = type(h)
                if t is int or t is float:
                    out = ("n", float(h))
                elif t is str:
                    grounded = None
                    if len(h) >= 2 and isinstance(self.output, dict):
                        grounded = h in self.input_text()
                    out = ("s", h, float(len(h)) if h else 0.0, grounded)
                elif t is bool:
                    out = ("b", h)
                elif t is list:
                    out = ("l", float(len(h)))
                elif t is dict:
                    out = ("d", tuple(zip(h, map(json_type, h.values()), strict=True)))
                else:
                    out = ("o",)
        memo[path] = out
        return out


def _insort(xs: list[float], x: float) -> None:
    bisect.insort(xs, x)


def _discard(xs: list[float], x: float) -> None:
    i = bisect.bisect_left(xs, x)
    if i < len(xs) and xs[i] == x:
        del xs[i]


def _count(c: dict[Any, int], key: Any, n: int) -> None:
    v = c.get(key, 0) + n
    if v > 0:
        c[key] = v
    else:
        del c[key]


def _net_sorted(xs: list[float], delta: dict[float, int]) -> list[float]:
    """Sorted ``xs`` with each value's net count change applied; ``xs`` itself when nothing
    changes (never modified)."""
    if not any(delta.values()):
        return xs
    out = list(xs)
    for x, d in delta.items():
        for _ in range(-d):
            _discard(out, x)
    for x, d in delta.items():
        for _ in range(d):
            _insort(out, x)
    return out


def _net_counts(c: dict[Any, int], delta: dict[Any, int]) -> dict[Any, int]:
    """Counts ``c`` with net changes applied (``_count``); ``c`` itself when none change."""
    changed = [(k, d) for k, d in delta.items() if d]
    if not changed:
        return c
    out = c.copy()
    for k, d in changed:
        _count(out, k, d)
    return out


def _net_key_types(
    kt: dict[str, dict[str, int]], delta: dict[tuple[str, str], int]
) -> dict[str, dict[str, int]]:
    """Each key's JSON-type counts with net changes applied; ``kt`` itself when none change."""
    changed = [(k, d) for k, d in delta.items() if d]
    if not changed:
        return kt
    out = dict(kt)
    copied: set[str] = set()
    for (key, typ), d in changed:
        types = out.get(key)
        if key not in copied:
            types = {} if types is None else types.copy()
            out[key] = types
            copied.add(key)
        assert types is not None
        _count(types, typ, d)
    for key in copied:
        if not out[key]:
            del out[key]
    return out


def _tally(samples: list[StepSample], key: str, n: int, into: dict[Any, int]) -> dict[Any, int]:
    """Add ``n`` to ``into[value]`` for each sample's non-null value of attribute ``key``
    (``"model"``: its model); raises TypeError on an unhashable value."""
    for s in samples:
        v = s.model if key == "model" else s.attributes.get(key)
        if v is not None:
            into[v] = into.get(v, 0) + n
    return into


def dominant(counts: dict[Any, int], total: int, share: float = 0.9) -> Any:
    """The value that makes up at least ``share`` of ``total`` counted, else None."""
    if not total or not counts:
        return None
    top, n = max(counts.items(), key=lambda kv: kv[1])
    return top if n / total >= share else None


class NetChange:
    """The net change samples joining (``n=1``) and leaving (``n=-1``) make to one path's
    ``PathStats``: per value, how many more or fewer (``PathStats.advanced`` applies it)."""

    __slots__ = (
        "touched",
        "count",
        "n_dicts",
        "seen",
        "grounded",
        "nums",
        "strs",
        "bools",
        "slen",
        "llen",
        "keys",
        "ktypes",
    )

    def __init__(self) -> None:
        self.touched = False
        self.count = self.n_dicts = self.seen = self.grounded = 0
        self.nums: dict[float, int] = {}
        self.strs: dict[str, int] = {}
        self.bools: dict[bool, int] = {}
        self.slen: dict[float, int] = {}
        self.llen: dict[float, int] = {}
        self.keys: dict[str, int] = {}
        self.ktypes: dict[tuple[str, str], int] = {}

    def visit(self, sample: StepSample, path: str, n: int) -> None:
        """Count ``sample``'s value at ``path`` in or out (as ``PathStats.update``)."""
        self.count_in(sample.counted(path), n)

    def count_in(self, c: tuple[Any, ...] | None, n: int) -> None:
        """Count a sample's ``counted`` value in or out."""
        if c is None:
            return
        self.touched = True
        self.count += n
        kind = c[0]
        if kind == "n":
            self.nums[c[1]] = self.nums.get(c[1], 0) + n
        elif kind == "s":
            self.strs[c[1]] = self.strs.get(c[1], 0) + n
            if c[2]:
                self.slen[c[2]] = self.slen.get(c[2], 0) + n
            if c[3] is not None:
                self.seen += n
                self.grounded += n * c[3]
        elif kind == "b":
            self.bools[c[1]] = self.bools.get(c[1], 0) + n
        elif kind == "l":
            if c[1]:
                self.llen[c[1]] = self.llen.get(c[1], 0) + n
        elif kind == "d":
            self.n_dicts += n
            keys, ktypes = self.keys, self.ktypes
            for k, typ in c[1]:
                keys[k] = keys.get(k, 0) + n
                ktypes[(k, typ)] = ktypes.get((k, typ), 0) + n


class PathStats:
    """What a step's successful outputs hold at one field path (``features.field_map``),
    over the present samples of one baseline: kept up to date as samples come and go."""

    __slots__ = (
        "count",
        "numbers",
        "strings",
        "booleans",
        "lengths",
        "n_dicts",
        "keys",
        "key_types",
        "seen",
        "grounded",
        "_profile",
    )

    def __init__(self) -> None:
        self.count = 0  # present samples with a value at the path
        self.numbers: list[float] = []  # sorted; numbers (not booleans) at the path
        self.strings: dict[str, int] = {}  # string values (categories) and their counts
        self.booleans: dict[bool, int] = {}
        self.lengths: dict[str, list[float]] = {"str": [], "list": []}  # sorted, non-empty
        self.n_dicts = 0  # objects at the path
        self.keys: dict[str, int] = {}  # how many of those objects have each key
        self.key_types: dict[str, dict[str, int]] = {}  # each key's JSON types
        self.seen = 0  # samples whose output holds a string of 2+ characters at the path
        self.grounded = 0  # ... that appears in the step's input
        self._profile: tuple[int, dict[str, int], set[str], dict[str, Any]] | None = None

    def copy(self) -> PathStats:
        new = PathStats.__new__(PathStats)
        new.count = self.count
        new.numbers = list(self.numbers)
        new.strings = self.strings.copy()
        new.booleans = self.booleans.copy()
        new.lengths = {"str": self.lengths["str"][:], "list": self.lengths["list"][:]}
        new.n_dicts = self.n_dicts
        new.keys = self.keys.copy()
        new.key_types = {k: v.copy() for k, v in self.key_types.items()}
        new.seen, new.grounded = self.seen, self.grounded
        new._profile = self._profile
        return new

    def advanced(self, path: str, removed: list[StepSample], added: list[StepSample]) -> PathStats:
        """These statistics with ``removed`` counted out and ``added`` in (as ``update`` one
        sample at a time would leave them), as a new object that shares every container
        the change leaves as it was; this one is not modified (a detector may be reading
        it). A run that replaces another with the same keys, categories and lengths
        changes little: most containers, and the dict profile, carry over."""
        if len(removed) == len(added):
            for r, a in zip(removed, added, strict=True):
                if r.counted(path) != a.counted(path):
                    break
            else:
                return self  # what left is what joined: nothing changes
        net = NetChange()
        for n, samples in ((-1, removed), (1, added)):
            for sample in samples:
                net.visit(sample, path, n)
        return self.changed(net)

    def swapped(self, out: tuple[Any, ...] | None, into: tuple[Any, ...] | None) -> PathStats:
        """``advanced`` for one sample out and one in, from their ``counted`` values."""
        if out == into:
            return self
        net = NetChange()
        net.count_in(out, -1)
        net.count_in(into, 1)
        return self.changed(net)

    def changed(self, net: NetChange) -> PathStats:
        """These statistics with ``net`` applied, as a new object sharing what it leaves as
        it was (this one unmodified); this one when ``net`` touches nothing."""
        if not net.touched:
            return self
        new = PathStats.__new__(PathStats)
        new.count = self.count + net.count
        new.numbers = _net_sorted(self.numbers, net.nums)
        new.strings = _net_counts(self.strings, net.strs)
        new.booleans = _net_counts(self.booleans, net.bools)
        s_lens = _net_sorted(self.lengths["str"], net.slen)
        l_lens = _net_sorted(self.lengths["list"], net.llen)
        if s_lens is self.lengths["str"] and l_lens is self.lengths["list"]:
            new.lengths = self.lengths
        else:
            new.lengths = {"str": s_lens, "list": l_lens}
        new.n_dicts = self.n_dicts + net.n_dicts
        new.keys = _net_counts(self.keys, net.keys)
        new.key_types = _net_key_types(self.key_types, net.ktypes)
        new.seen, new.grounded = self.seen + net.seen, self.grounded + net.grounded
        same_dicts = new.keys is self.keys and new.key_types is self.key_types
        new._profile = self._profile if same_dicts and net.n_dicts == 0 else None
        return new

    def update(self, sample: StepSample, path: str, n: int) -> None:
        """Count ``sample`` in (``n=1``) or out (``n=-1``)."""
        if not sample.present:
            return
        m = sample.fields()
        if path not in m:
            return
        self._profile = None
        h = m[path]
        self.count += n
        t = type(h)
        if t is int or t is float:
            (_insort if n > 0 else _discard)(self.numbers, float(h))
        elif t is str:
            _count(self.strings, h, n)
            if h:
                (_insort if n > 0 else _discard)(self.lengths["str"], float(len(h)))
            if len(h) >= 2 and isinstance(sample.output, dict):
                self.seen += n
                self.grounded += n * (h in sample.input_text())
        elif t is bool:
            _count(self.booleans, h, n)
        elif t is list:
            if h:
                (_insort if n > 0 else _discard)(self.lengths["list"], float(len(h)))
        elif t is dict:
            self.n_dicts += n
            for k, v in h.items():
                _count(self.keys, k, n)
                types = self.key_types.setdefault(k, {})
                _count(types, json_type(v), n)
                if not types:
                    del self.key_types[k]

    def categories(self, kind: type) -> dict[Any, int]:
        """Each string (or boolean) value held at the path and how many samples hold it."""
        return self.booleans if kind is bool else self.strings

    def dict_profile(self) -> tuple[int, dict[str, int], set[str], dict[str, Any]]:
        """How many objects, their key counts, the keys present in 90% of them, and each of
        those keys' dominant JSON type."""
        if self._profile is None:
            n = self.n_dicts
            usual = {k for k, c in self.keys.items() if n and c / n >= 0.9}
            types = {k: dominant(self.key_types[k], self.keys[k]) for k in usual}
            self._profile = (n, self.keys, usual, types)
        return self._profile


class Baseline:
    """Statistics of one baseline (the samples a step is compared with), updated as samples
    join and leave instead of recomputed: counts, the JSON types of outputs, sorted
    durations and, per field path asked for, ``PathStats``."""

    __slots__ = ("samples", "present", "types", "durations", "paths", "attrs", "memo")

    def __init__(self, samples: list[StepSample]) -> None:
        self.samples = samples
        self.present = 0
        self.types: dict[str, int] = {}
        self.durations: list[float] = []
        self.paths: dict[str, PathStats] = {}
        # Per attribute asked for (``attribute_values``): its values counted.
        self.attrs: dict[str, dict[Any, int]] = {}
        # Other derived values, dropped whenever a sample joins or leaves.
        self.memo: dict[Any, Any] = {}
        for s in samples:
            self._own(s, 1, sort=False)
        self.durations.sort()

    def _own(self, s: StepSample, n: int, *, sort: bool = True) -> None:
        if s.present:
            self.present += n
            _count(self.types, json_type(s.output), n)
        if s.duration_ns is not None:
            if n < 0:
                _discard(self.durations, float(s.duration_ns))
            elif sort:
                _insort(self.durations, float(s.duration_ns))
            else:
                self.durations.append(float(s.duration_ns))

    def usual_type(self) -> Any:
        """The JSON type of at least 90% of the outputs, else None."""
        memo = self.memo
        hit = memo.get(_USUAL_TYPE, _UNREAD)
        if hit is _UNREAD:
            hit = memo[_USUAL_TYPE] = dominant(self.types, self.present)
        return hit

    def attribute_values(self, key: str) -> dict[Any, int] | None:
        """The values the samples hold for attribute ``key`` (``"model"``: the step's model),
        None left out, each with how many samples hold it (equal values count as one, as
        ``==`` compares them); None when a value cannot be counted (unhashable)."""
        hit = self.attrs.get(key)
        if hit is None:
            try:
                hit = _tally(self.samples, key, 1, {})
            except TypeError:
                return None
            self.attrs[key] = hit
        return hit

    def path(self, path: str) -> PathStats:
        stats = self.paths.get(path)
        if stats is None:
            return self._new_path(path)
        return stats

    def _new_path(self, path: str) -> PathStats:
        """``path``'s statistics computed, and kept: carried forward (``paths``) while a
        sample holds the path; one no sample holds (a failed run's new field) only in
        ``memo``, with these samples."""
        unheld: PathStats | None = self.memo.get(("path", path))
        if unheld is not None:
            return unheld
        stats = PathStats()
        for s in self.samples:
            stats.update(s, path, 1)
        if stats.count:
            self.paths[path] = stats
        else:
            self.memo[("path", path)] = stats
        return stats

    def advanced(
        self, samples: list[StepSample], added: list[StepSample], removed: list[StepSample]
    ) -> Baseline:
        """A copy over ``samples`` (this baseline's, with ``added`` and without
        ``removed``); this one is left as it was (a detector may still be reading it)."""
        new = Baseline.__new__(Baseline)
        new.samples = samples
        new.present = self.present
        new.memo = {}
        if not added and not removed:  # nothing changes: share what is never mutated
            new.types, new.durations, new.paths = self.types, self.durations, dict(self.paths)
            new.attrs = dict(self.attrs)
            new.memo = self.memo
            return new
        if len(added) == len(removed) == 1:  # a run in, the oldest out (the usual case)
            return self._replaced(new, added[0], removed[0])
        new.attrs = {}
        for key, counts in self.attrs.items():
            try:
                net = _tally(added, key, 1, _tally(removed, key, -1, {}))
            except TypeError:
                continue  # counted again when asked for
            new.attrs[key] = _net_counts(counts, net)
        types: dict[str, int] = {}
        durations: dict[float, int] = {}
        present = 0
        for n, group in ((-1, removed), (1, added)):
            for smp in group:
                if smp.present:
                    present += n
                    t = json_type(smp.output)
                    types[t] = types.get(t, 0) + n
                if smp.duration_ns is not None:
                    x = float(smp.duration_ns)
                    durations[x] = durations.get(x, 0) + n
        new.present = self.present + present
        new.types = _net_counts(self.types, types)
        new.durations = _net_sorted(self.durations, durations)
        # A path no sample holds any more is dropped (recomputed if asked for again).
        paths = ((p, st.advanced(p, removed, added)) for p, st in self.paths.items())
        new.paths = {p: st for p, st in paths if st.count}
        return new

    def _replaced(self, new: Baseline, a: StepSample, r: StepSample) -> Baseline:
        """``advanced`` with sample ``a`` in and ``r`` out: what they count alike is shared
        as it is (the counts, durations, path statistics and attribute tallies)."""
        attrs: dict[str, dict[Any, int]] = {}
        for key, counts in self.attrs.items():
            va = a.model if key == "model" else a.attributes.get(key)
            vr = r.model if key == "model" else r.attributes.get(key)
            if va == vr:
                attrs[key] = counts
                continue
            try:
                net = _tally([a], key, 1, _tally([r], key, -1, {}))
            except TypeError:
                continue  # counted again when asked for
            attrs[key] = _net_counts(counts, net)
        new.attrs = attrs
        ta = json_type(a.output) if a.present else None
        tr = json_type(r.output) if r.present else None
        new.present = self.present + (ta is not None) - (tr is not None)
        if ta == tr:
            new.types = self.types
            if _USUAL_TYPE in self.memo:  # the same counts: the same answer
                new.memo[_USUAL_TYPE] = self.memo[_USUAL_TYPE]
        else:
            types: dict[str, int] = {}
            if tr is not None:
                types[tr] = -1
            if ta is not None:
                types[ta] = types.get(ta, 0) + 1
            new.types = _net_counts(self.types, types)
        da, dr = a.duration_ns, r.duration_ns
        if da == dr:
            new.durations = self.durations
        else:
            durations: dict[float, int] = {}
            if dr is not None:
                durations[float(dr)] = -1
            if da is not None:
                durations[float(da)] = durations.get(float(da), 0) + 1
            new.durations = _net_sorted(self.durations, durations)
        # Per path, what the two samples count (``counted``, memoised per sample: read from
        # the memo directly when there); the statistics are shared when they count alike.
        paths: dict[str, PathStats] = {}
        rm, am = r._counted, a._counted
        cr: Any
        ca: Any
        for p, st in self.paths.items():
            cr = _UNREAD if rm is None else rm.get(p, _UNREAD)
            if cr is _UNREAD:
                cr = r.counted(p)
                rm = r._counted
            ca = _UNREAD if am is None else am.get(p, _UNREAD)
            if ca is _UNREAD:
                ca = a.counted(p)
                am = a._counted
            if cr == ca:
                paths[p] = st
            else:
                st = st.swapped(cr, ca)
                if st.count:  # else no sample holds the path: dropped, recomputed if asked for
                    paths[p] = st
        new.paths = paths
        return new


@dataclass(slots=True)
class History:
    """Successful runs of one workflow, indexed by step name."""

    workflow: str
    run_ids: list[str] = field(default_factory=list)
    step_counts: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    samples: dict[str, list[StepSample]] = field(default_factory=dict)
    # The same samples by step signature (agent, kind, name, occurrence) and by role (agent,
    # kind, name): a name such as ``generation`` or ``ChatOpenAI`` recurs within one run for
    # different decisions, and each is compared with its own kind (see ``signatures``).
    by_signature: dict[tuple[Any, ...], list[StepSample]] = field(default_factory=dict)
    _without: dict[tuple[Any, ...], list[StepSample]] = field(default_factory=dict, repr=False)
    # Derived baselines (per step name and path), computed once per history.
    memo: dict[Any, Any] = field(default_factory=dict)
    # Incremental statistics per baseline key (``baseline``), carried to the next history.
    baselines: dict[tuple[Any, ...], Baseline] = field(default_factory=dict, repr=False)
    # ``has_run``'s set of ``run_ids``, with the list and length it was built from.
    _id_set: tuple[list[str], int, frozenset[str]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def runs(self) -> int:
        return len(self.run_ids)

    def has_run(self, run_id: str) -> bool:
        """``run_id in run_ids``, from a set built once per history (a run id is 32
        characters: a scan of 50 of them costs ~9,000 instructions, and every run end asks
        two or three times). Rebuilt if ``run_ids`` was replaced or grew."""
        ids = self.run_ids
        cached = self._id_set
        if cached is None or cached[0] is not ids or cached[1] != len(ids):
            cached = self._id_set = (ids, len(ids), frozenset(ids))
        return run_id in cached[2]

    def of(self, step_name: str, exclude_run: str | None = None) -> list[StepSample]:
        return self._excluding(("name", step_name), self.samples.get(step_name, []), exclude_run)

    def of_signature(
        self, signature: tuple[Any, ...], exclude_run: str | None = None
    ) -> list[StepSample]:
        """Samples with ``signature`` (``("sig", ...)`` or ``("role", ...)``)."""
        return self._excluding(signature, self.by_signature.get(signature, []), exclude_run)

    def of_key(self, key: tuple[Any, ...], exclude_run: str | None = None) -> list[StepSample]:
        """Samples of a baseline key: ``("name", name)``, ``("sig", ...)`` or ``("role", ...)``."""
        if key[0] == "name":
            return self.of(key[1], exclude_run)
        return self.of_signature(key, exclude_run)

    def baseline(self, key: tuple[Any, ...]) -> Baseline:
        """The statistics of a baseline key's samples (kept across ``advanced``)."""
        b = self.baselines.get(key)
        if b is None:
            b = Baseline(self.of_key(key))
            if b.samples:  # none: not carried forward (a failed run's new step, say)
                self.baselines[key] = b
        return b

    def _excluding(
        self, key: tuple[Any, ...], samples: list[StepSample], exclude_run: str | None
    ) -> list[StepSample]:
        if exclude_run is None or not self.has_run(exclude_run):
            return samples
        hit = self._without.get((*key, exclude_run))
        if hit is None:
            hit = self._without[(*key, exclude_run)] = [
                s for s in samples if s.run_id != exclude_run
            ]
        return hit

    def median_steps(self) -> int | None:
        if not self.step_counts:
            return None
        return int(round(statistics.median(self.step_counts)))

    def advanced(
        self, rec: RunRecord, value_of: Callable[[str], Any], ctx: RunContext | None = None
    ) -> History:
        """This history with the successful run ``rec`` as its most recent run (and its
        oldest dropped beyond ``HISTORY_RUNS``): the same samples, in the same order, as
        ``load_history`` would read once the run is stored, and the baselines asked for so
        far carried over, updated by the samples that came and went. ``value_of(hash)``: the
        decoded payload (``decode``); ``ctx``: see ``_add_record``."""
        new = History(workflow=self.workflow)
        _add_record(new, rec, value_of, ctx=ctx)
        keep = self.run_ids[: HISTORY_RUNS - 1]
        dropped = set(self.run_ids[len(keep) :])
        new.run_ids.extend(keep)
        new.step_counts.extend(self.step_counts[: len(keep)])
        new.tokens.extend(self.tokens[: len(keep)])
        new.costs.extend(self.costs[: len(keep)])
        by_name, by_sig = new.samples, new.by_signature
        # The new run's samples come first in each list: how many, per baseline key.
        fresh: dict[tuple[Any, ...], int] = {}
        for key in self.baselines:
            mine = by_name.get(key[1]) if key[0] == "name" else by_sig.get(key)
            if mine:
                fresh[key] = len(mine)
        # Each key's samples without the dropped runs' (the oldest: theirs are at the end),
        # after the new run's; inline, ten keys or so per run. No list is shared with this
        # history.
        removed: dict[tuple[Any, ...], list[StepSample]] = {}
        k: Any
        into: dict[Any, list[StepSample]]
        for names, old_lists, into in (
            (True, self.samples, by_name),
            (False, self.by_signature, by_sig),
        ):
            for k, old in old_lists.items():
                if old and old[-1].run_id in dropped:
                    cut = len(old) - 1
                    while cut and old[cut - 1].run_id in dropped:
                        cut -= 1
                    removed[("name", k) if names else k] = old[cut:]
                    if cut == 0:  # every sample left (dropped below)
                        removed[_EMPTIED] = []
                    old = old[:cut]
                    mine = into.get(k)
                    if mine is None:
                        into[k] = old
                    else:
                        mine.extend(old)
                else:
                    mine = into.get(k)
                    if mine is None:
                        into[k] = old[:]
                    else:
                        mine.extend(old)
        for key, b in self.baselines.items():
            samples = by_name.get(key[1]) if key[0] == "name" else by_sig.get(key)
            if samples is None:
                samples = []
            new.baselines[key] = b.advanced(
                samples, samples[: fresh.get(key, 0)], removed.get(key, [])
            )
        if _EMPTIED in removed:
            # A key whose samples all left is dropped, with its baseline (``load_history``
            # would have none): step names and signatures come and go, and a long-running
            # run-end worker must not keep every one it has seen.
            new.samples = {k: v for k, v in new.samples.items() if v}
            new.by_signature = {k: v for k, v in new.by_signature.items() if v}
            new.baselines = {k: b for k, b in new.baselines.items() if b.samples}
        return new


# Workflows whose history one store's cache holds; the least recently used one goes first.
MAX_CACHED_WORKFLOWS = 256


class HistoryCache:
    """Histories of one store's workflows, bounded (``MAX_CACHED_WORKFLOWS``)."""

    def __init__(self, max_workflows: int = MAX_CACHED_WORKFLOWS) -> None:
        self.max_workflows = max_workflows
        self._lock = threading.Lock()
        # workflow -> [successful runs counted at build, history, lookups since]
        self._entries: OrderedDict[str, list[Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, store: StoreReader, workflow: str, ending: Run | None = None) -> History:
        """The workflow's history. ``ending``: a run of it that is ending now (stored, about
        to be folded in by ``observe``), which the count may include without the history
        being read again."""
        with self._lock:
            hit = self._entries.get(workflow)
            if hit is not None:
                self._entries.move_to_end(workflow)
            # Each lookup follows at most one new run, so a history of N >= 20 runs cannot
            # have grown by a tenth before N/10 lookups: skip counting until then (a COUNT
            # over the workflow's runs after every run is O(N) per run).
            if hit is not None and hit[0] >= 20 and hit[2] < hit[0] // 10:
                hit[2] += 1
                return hit[1]  # type: ignore[no-any-return]
        count = store.count_runs(RunQuery(workflow=workflow, status="succeeded"))
        if (
            hit is not None
            and ending is not None
            and ending.status == "succeeded"
            and ending.workflow == workflow
            and not hit[1].has_run(ending.id)
        ):
            count -= 1  # the run ending now is stored already; observe() folds it in next
        # Rebuild when the history has grown by a tenth (or is small): a run-end hook on a
        # busy workflow must not re-read 50 runs after every run.
        if hit is not None and (hit[0] == count or (count >= 20 and count - hit[0] < count / 10)):
            with self._lock:
                hit[2] = 0  # counted just now: the next N/10 lookups may skip counting
            return hit[1]  # type: ignore[no-any-return]
        history = load_history(store, workflow)
        with self._lock:
            self._entries[workflow] = [count, history, 0]
            self._entries.move_to_end(workflow)
            while len(self._entries) > self.max_workflows:
                self._entries.popitem(last=False)
        return history

    def observe(self, ctx: RunContext) -> None:
        """Fold a run that just ended into its workflow's cached history (the most recent
        ``HISTORY_RUNS`` successful runs), so the run-end pipeline never re-reads a history
        because of a run it has just seen: the baselines change once per successful run, by
        the samples that joined and left (``History.advanced``), at a cost that does not
        grow with the runs stored. A history not cached yet is left to be loaded when first
        needed."""
        run = ctx.run
        if run.status != "succeeded":
            return
        with self._lock:
            hit = self._entries.get(run.workflow)
            if hit is None or hit[1].has_run(run.id):
                return
            old: History = hit[1]
        new = old.advanced(ctx.record, ctx._raw, ctx)
        with self._lock:
            if self._entries.get(run.workflow) is hit:
                hit[0] += 1  # one more successful run than counted, and it is in the history
                hit[1] = new

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _StoreHistories:
    """The history cache of each store, living as long as the store object does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._caches: weakref.WeakKeyDictionary[Any, HistoryCache] = weakref.WeakKeyDictionary()
        self._unweakable: dict[int, tuple[Any, HistoryCache]] = {}

    def of(self, store: StoreReader) -> HistoryCache:
        with self._lock:
            try:
                cache = self._caches.get(store)
                if cache is None:
                    cache = self._caches[store] = HistoryCache()
                return cache
            except TypeError:  # a store that cannot be weakly referenced: kept with the key
                hit = self._unweakable.get(id(store))
                if hit is None or hit[0] is not store:
                    hit = self._unweakable[id(store)] = (store, HistoryCache())
                return hit[1]

    def get(self, store: StoreReader, workflow: str, ending: Run | None = None) -> History:
        return self.of(store).get(store, workflow, ending)

    def observe(self, ctx: RunContext) -> None:
        self.of(ctx.store).observe(ctx)

    def clear(self) -> None:
        with self._lock:
            caches = list(self._caches.values()) + [c for _, c in self._unweakable.values()]
        for c in caches:
            c.clear()


history_cache = _StoreHistories()


MAX_SAMPLES_PER_RUN = 8  # samples of one step name taken from one run
MIN_BASELINE = 3  # samples of a signature before it, not the bare name, is the baseline


def load_history(store: StoreReader, workflow: str, limit: int = HISTORY_RUNS) -> History:
    """Read the workflow's most recent successful runs and sample every step."""
    history = History(workflow=workflow)
    runs = store.list_runs(RunQuery(workflow=workflow, status="succeeded", limit=limit))
    read = getattr(store, "read", None)
    if callable(read):
        # Every record in one snapshot, a few queries in all (the ids are the listing's, so
        # a project's view reads only its runs), instead of a read transaction per table and
        # run: on PostgreSQL each is a round trip or more
        from flightlog.store import core

        with read() as tx:
            found = core.records(tx, [r.id for r in runs])
        records = [found[r.id] for r in runs if r.id in found]
    else:
        records = [store.get_record(r.id) for r in runs]
    hashes: set[str] = set()
    for rec in records:
        for s in rec.steps:
            if s.output_hash:
                hashes.add(s.output_hash)
            if s.input_hash:
                hashes.add(s.input_hash)
    payloads = store.get_payloads(hashes) if hashes else {}
    for rec in records:
        _add_record(history, rec, lambda h: decode(payloads.get(h)), raw_of=payloads.get)
    return history


TOOL_CALL_ID_KEYS = ("gen_ai.tool.call.id", "tool_call.id", "tool.call_id")


def tool_call_id(step: Step) -> str | None:
    """The id of the model's tool call a tool step executed (GenAI ``gen_ai.tool.call.id``)."""
    for key in TOOL_CALL_ID_KEYS:
        v = step.attributes.get(key)
        if isinstance(v, str) and v:
            return v
    return None


def tool_calls_in(values: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``({call id: arguments}, {call id: result})`` found in chat messages anywhere in
    ``values``: OpenAI-style ``tool_calls`` and ``{"role": "tool", "tool_call_id", "content"}``
    messages, and GenAI ``tool_call`` / ``tool_call_response`` message parts. A framework that
    records no content on its tool spans still hands both to the model."""
    args: dict[str, Any] = {}
    results: dict[str, Any] = {}
    stack = list(values)
    seen = 0
    while stack and seen < 100_000:
        v = stack.pop()
        seen += 1
        if isinstance(v, list):
            stack.extend(v)
            continue
        if not isinstance(v, dict):
            continue
        if isinstance(v.get("tool_call_id"), str) and "content" in v:
            results.setdefault(v["tool_call_id"], v["content"])
        fn = v.get("function")
        if isinstance(v.get("id"), str) and isinstance(fn, dict) and "arguments" in fn:
            args.setdefault(v["id"], fn["arguments"])
        if v.get("type") == "tool_call" and isinstance(v.get("id"), str) and "arguments" in v:
            args.setdefault(v["id"], v["arguments"])
        if v.get("type") == "tool_call_response" and isinstance(v.get("id"), str):
            results.setdefault(v["id"], v.get("response", v.get("result")))
        stack.extend(x for x in v.values() if isinstance(x, (dict, list)))
    return args, results


def _conversation_fill(
    steps: list[Step], value_of: Callable[[str | None], Any]
) -> dict[tuple[str, str], Any]:
    """``{(step id, "input"|"output"): value}`` for tool steps that recorded no input or
    output, taken from the LLM calls' messages by the tool call id."""
    need = [s for s in steps if s.kind == "tool" and not (s.input_hash and s.output_hash)]
    ids = {s.id: cid for s in need if (cid := tool_call_id(s))}
    if not ids:
        return {}
    convo = []
    for s in steps:
        if s.kind == "llm":
            convo.extend([value_of(s.input_hash), value_of(s.output_hash)])
    args, results = tool_calls_in([v for v in convo if v is not None and v is not _MISSING])
    out: dict[tuple[str, str], Any] = {}
    for s in need:
        cid = ids.get(s.id)
        if cid is None:
            continue
        if not s.input_hash and cid in args:
            a = args[cid]
            out[(s.id, "input")] = unwrap(a) if isinstance(a, str) else a
        if not s.output_hash and cid in results:
            r = results[cid]
            out[(s.id, "output")] = unwrap(r) if isinstance(r, str) else r
    return out


_STEP_ORDER = operator.attrgetter("index", "started_ns", "id")  # (index, start, id)


def signatures(steps: list[Step]) -> dict[str, tuple[Any, ...]]:
    """Each step's signature: (agent, kind, name, occurrence), the occurrence counting the
    run's earlier steps with the same agent, kind and name (1 for the first). Two runs'
    steps with one signature play the same part in the workflow."""
    count: dict[tuple[Any, ...], int] = {}
    out: dict[str, tuple[Any, ...]] = {}
    for s in sorted(steps, key=_STEP_ORDER):
        role = (s.agent, s.kind, s.name)
        count[role] = count.get(role, 0) + 1
        out[s.id] = (*role, count[role])
    return out


def _add_record(
    history: History,
    rec: RunRecord,
    value_of: Callable[[str], Any],
    *,
    ctx: RunContext | None = None,
    raw_of: Callable[[str], bytes | None] | None = None,
) -> None:
    """Append one successful run's figures and step samples to ``history``; ``value_of(hash)``
    is the decoded payload (``decode``). ``ctx``: the run's context once detected, whose
    signatures, filled-in tool values, output field maps and decoded inputs are reused (and
    whose payloads are ``raw_of``); ``raw_of(hash)``: the payload's bytes, from which inputs
    not decoded yet are decoded when first read."""
    fields_of: Callable[[str], dict[str, Any] | None] | None = None
    if ctx is not None:
        fields_of = ctx._fields.get
        raw_of = raw_of or ctx._load_payloads().get
    history.run_ids.append(rec.run.id)
    history.step_counts.append(len(rec.steps))
    history.tokens.append(sum((s.input_tokens or 0) + (s.output_tokens or 0) for s in rec.steps))
    history.costs.append(sum(s.cost or 0.0 for s in rec.steps))
    per_name: dict[str, int] = {}
    sigs = ctx._sigs if ctx is not None and ctx._sigs is not None else signatures(rec.steps)
    if ctx is not None and ctx._fill is not None:
        filled = ctx._fill
    else:
        filled = _conversation_fill(rec.steps, lambda h: value_of(h) if h else None)
    run_id, started = rec.run.id, rec.run.started_ns
    by_name, by_sig = history.samples, history.by_signature
    values = ctx._values if ctx is not None else None
    for s in rec.steps:
        if s.status == "error":
            continue
        # A step repeated many times in one run (an agent loop) contributes a bounded
        # sample, so a long run cannot make every detector quadratic.
        name = s.name
        seen = per_name[name] = per_name.get(name, 0) + 1
        if seen > MAX_SAMPLES_PER_RUN:
            continue
        raw = None
        h = s.input_hash
        if not h:
            value = filled.get((s.id, "input"))
        elif raw_of is None:
            value = value_of(h)
        elif values is not None and h in values:
            value = values[h]
        else:
            value, raw = _UNREAD, raw_of(h)
        out_hash = s.output_hash
        output = value_of(out_hash) if out_hash else filled.get((s.id, "output"))
        ended = s.ended_ns
        # (positionally: StepSample's fields in order)
        sample = StepSample(
            run_id,
            output,
            value,
            None if ended is None else ended - s.started_ns,  # ``Step.duration_ns``
            s.attributes,
            s.model,
            started,
            None,
            None,
            None,
            raw,
        )
        if fields_of is not None and out_hash and output is not _MISSING and output is not None:
            sample._fields = fields_of(s.id)  # None: computed when first needed
        hit = by_name.get(name)
        if hit is None:
            by_name[name] = [sample]
        else:
            hit.append(sample)
        sig = sigs[s.id]
        for key in (("sig", *sig), ("role", *sig[:3])):
            hit = by_sig.get(key)
            if hit is None:
                by_sig[key] = [sample]
            else:
                hit.append(sample)


class RunContext:
    """One run as detectors see it: the record, decoded payloads and the workflow's history."""

    def __init__(
        self,
        store: StoreReader,
        record: RunRecord,
        history: History | None = None,
        *,
        payloads: dict[str, bytes] | None = None,
    ) -> None:
        """``payloads``: the stored payloads by hash, read with the record (it may hold other
        runs' too); read from the store when first needed if not given."""
        self.store = store
        self.record = record
        self.run = record.run
        self.steps = record.steps
        self.history = history if history is not None else History(workflow=record.run.workflow)
        self._by_id = {s.id: s for s in record.steps}
        self._sigs: dict[str, tuple[Any, ...]] | None = None
        self._fill: dict[tuple[str, str], Any] | None = None
        self._payloads: dict[str, bytes] | None = payloads
        self._values: dict[str, Any] = {}
        self.now_ns = time.time_ns()
        # A run that is itself part of the history gets baselines without it, computed here.
        self._own = self.history.has_run(record.run.id)  # (50 ids at most)
        self._exclude = record.run.id if self._own else None  # a run not in it: nothing to
        self._memo: dict[Any, Any] = {} if self._own else self.history.memo
        self._keys: dict[str, tuple[Any, ...]] = {}
        # Per step id, what ``baseline`` and ``stats`` answered (the history does not change
        # while the run is looked at).
        self._samples: dict[str, list[StepSample]] = {}
        self._stats: dict[str, Baseline] = {}
        self._outputs: list[tuple[Step, Any, list[StepSample]]] | None = None
        self._fields: dict[str, dict[str, Any]] = {}
        # The [detect] section of flightlog.toml, once ``run_detectors`` has read it.
        self.detect_config: dict[str, Any] | None = None

    @classmethod
    def load(
        cls, store: StoreReader, run_id: str, *, with_history: bool = True, ending: bool = False
    ) -> RunContext:
        """``ending``: the run is ending now (the run-end pipeline), and is folded into its
        workflow's history once detected (``history_cache.observe``)."""
        record = store.get_record(run_id)
        history = (
            history_cache.get(store, record.run.workflow, ending=record.run if ending else None)
            if with_history
            else None
        )
        return cls(store, record, history)

    def step(self, step_id: str | None) -> Step | None:
        return self._by_id.get(step_id) if step_id else None

    def _load_payloads(self) -> dict[str, bytes]:
        if self._payloads is None:
            hashes = [h for s in self.steps for h in (s.input_hash, s.output_hash) if h]
            self._payloads = self.store.get_payloads(hashes) if hashes else {}
        return self._payloads

    def _raw(self, h: str) -> Any:
        """The payload ``h`` decoded (``decode``: the missing marker when not stored)."""
        try:
            return self._values[h]
        except KeyError:
            value = self._values[h] = decode(self._load_payloads().get(h))
            return value

    def _decoded(self, h: str | None) -> Any:
        if not h:
            return None
        value = self._raw(h)
        return None if value is _MISSING else value

    def output(self, step: Step) -> Any:
        """The step's decoded output (None when it recorded none; for a tool step, what the
        model was handed as its result). Shared: do not mutate."""
        if not step.output_hash and step.kind == "tool":
            return self._filled().get((step.id, "output"))
        return self._decoded(step.output_hash)

    def output_bytes(self, step: Step) -> bytes | None:
        """The stored JSON bytes ``output(step)`` was decoded from; None when the output is
        not a stored payload of the step's own (a tool's result taken from the messages)."""
        h = step.output_hash
        if not h:
            return None
        return self._load_payloads().get(h)

    def has_output(self, step: Step) -> bool:
        if not step.output_hash and step.kind == "tool":
            return (step.id, "output") in self._filled()
        return bool(step.output_hash) and step.output_hash in self._load_payloads()

    def input(self, step: Step) -> Any:
        """The step's decoded input (its arguments by name). Shared: do not mutate."""
        if not step.input_hash and step.kind == "tool":
            return self._filled().get((step.id, "input"))
        return self._decoded(step.input_hash)

    def _filled(self) -> dict[tuple[str, str], Any]:
        if self._fill is None:
            self._fill = _conversation_fill(self.steps, self._decoded)
        return self._fill

    def outputs(self) -> list[tuple[Step, Any, list[StepSample]]]:
        """Steps that ended normally with a recorded output (a capture marker is none), each
        with that output and its ``baseline``: computed once per run, shared by the
        detectors that look at outputs. Shared: do not mutate."""
        if self._outputs is None:
            out = []
            for step in self.steps:
                if step.status != "ok" or step.ended_ns is None or not self.has_output(step):
                    continue
                value = self.output(step)
                if is_capture_marker(value):
                    continue
                out.append((step, value, self.baseline(step)))
            self._outputs = out
        return self._outputs

    def field_map(self, step: Step) -> dict[str, Any]:
        """``features.field_map`` of the step's output, computed once per run. Shared: do
        not mutate."""
        hit = self._fields.get(step.id)
        if hit is None:
            hit = self._fields[step.id] = field_map(self.output(step))
        return hit

    def baseline(self, step: Step) -> list[StepSample]:
        """Samples of the same step from the workflow's successful runs: those with its
        signature (agent, kind, name, occurrence); with fewer than ``MIN_BASELINE``, those
        with its agent, kind and name; else those with its name. Shared: do not mutate."""
        hit = self._samples.get(step.id)
        if hit is None:
            key = self.baseline_key(step)
            hit = self._samples[step.id] = self.history.of_key(key, exclude_run=self._exclude)
        return hit

    def stats(self, step: Step) -> Baseline:
        """Statistics of ``baseline(step)`` (shared by every run the history serves, and
        updated, not recomputed, as the history moves on); looked up once per step."""
        b = self._stats.get(step.id)
        if b is not None:
            return b
        key = self.baseline_key(step)
        if not self._own:
            b = self.history.baseline(key)
        else:
            b = self._memo.get(("stats", key))
            if b is None:
                b = self._memo[("stats", key)] = Baseline(self.baseline(step))
        self._stats[step.id] = b
        return b

    def baseline_key(self, step: Step) -> tuple[Any, ...]:
        """What ``baseline(step)`` compares with, as a hashable key (for memos)."""
        hit = self._keys.get(step.id)
        if hit is not None:
            return hit
        if self._sigs is None:
            self._sigs = signatures(self.steps)
        sig = self._sigs.get(step.id) or (step.agent, step.kind, step.name, 1)
        key: tuple[Any, ...] = ("name", step.name)
        for k in (("sig", *sig), ("role", *sig[:3])):
            if len(self.history.of_signature(k, exclude_run=self._exclude)) >= MIN_BASELINE:
                key = k
                break
        self._keys[step.id] = key
        return key

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()`` once per history (per run, if the run is part of its history)."""
        try:
            return self._memo[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def finding(
        self,
        detector: str,
        kind: str,
        message: str,
        *,
        step: Step | None = None,
        severity: str = "error",
        **evidence: Any,
    ) -> Finding:
        """Build a finding with a stable id for (run, step, detector, kind).

        ``kind`` may name what it is about after a colon (``budget:tokens``,
        ``number:total``): the finding's ``kind`` is the part before it; the whole string stays
        in ``evidence["kind"]`` and keys the id, as before ``kind`` was a field."""
        step_id = step.id if step else None
        return Finding(
            id=finding_id(self.run.id, step_id, detector, kind),
            run_id=self.run.id,
            detector=detector,
            severity=severity,
            message=message,
            step_id=step_id,
            evidence={"kind": kind, **evidence},
            created_ns=self.now_ns,
            kind=kind.partition(":")[0],
        )


def present(samples: Iterable[StepSample]) -> list[Any]:
    """The outputs of samples that recorded one."""
    return [s.output for s in samples if s.output is not _MISSING and s.output is not None]


def present_samples(samples: Iterable[StepSample]) -> list[StepSample]:
    """The samples that recorded an output."""
    return [s for s in samples if s.output is not _MISSING and s.output is not None]
