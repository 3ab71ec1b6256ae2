"""Automatic data lineage: which earlier step's output reached a later step's input.

Evidence, strongest first:

- ``identity``: the very object a step returned (or one of its elements) is passed to a
  later step, found on the caller's thread by ``id()`` (see ``IdentityIndex``);
- ``content``: an argument, or a value nested inside a list/dict/tuple argument, has the
  same canonical JSON as an earlier output (or one of its elements). Values whose JSON is
  shorter than ``MIN_CONTENT_BYTES`` (``3``, ``true``, ``"ok"``) are too common to be evidence;
- ``substring``: an earlier output string of at least ``MIN_SUBSTRING`` characters appears
  inside a string argument (prompt templating).

Content and substring matching run on the background writer, over the JSON snapshots taken
when each step was called, so the caller's thread pays only for the identity check. State is
bounded per run and released when the run ends.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import orjson

MIN_CONTENT_BYTES = 8
MIN_SUBSTRING = 16
MAX_ELEMENTS = 64  # elements of a container looked at, per level
MAX_STRINGS = 256  # output strings remembered per run for substring matching
MAX_HASHES = 4096  # output content hashes remembered per run
MAX_IDENTITIES = 256  # output objects remembered per run for identity matching
MAX_INDEXED_BYTES = 64 * 1024  # larger outputs are not indexed for content/substring lineage
_SKIP_IDENTITY = (type(None), bool, int, float, complex)


class IdentityIndex:
    """Objects returned by a run's steps, by ``id()``, on the caller's side.

    Holds a reference to each object so its ``id`` cannot be reused while it is indexed.
    Bounded: the oldest entries are forgotten first.
    """

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: OrderedDict[int, tuple[str, Any]] = OrderedDict()

    def add_output(self, step_id: str, value: Any) -> None:
        if isinstance(value, _SKIP_IDENTITY) or (
            isinstance(value, str) and len(value) < MIN_SUBSTRING
        ):
            return
        self._put(id(value), step_id, value)
        if isinstance(value, (list, tuple)):
            for v in value[:MAX_ELEMENTS]:
                if not isinstance(v, _SKIP_IDENTITY) and not isinstance(v, str):
                    self._put(id(v), step_id, v)
        elif isinstance(value, dict):
            for n, v in enumerate(value.values()):
                if n >= MAX_ELEMENTS:
                    break
                if not isinstance(v, _SKIP_IDENTITY) and not isinstance(v, str):
                    self._put(id(v), step_id, v)

    def _put(self, key: int, step_id: str, value: Any) -> None:
        self._by_id[key] = (step_id, value)
        self._by_id.move_to_end(key)
        while len(self._by_id) > MAX_IDENTITIES:
            self._by_id.popitem(last=False)

    def sources(self, arguments: dict[str, Any]) -> list[tuple[str, str]]:
        """(source step id, parameter) for each argument that is a known output object."""
        if not self._by_id:
            return []
        found: list[tuple[str, str]] = []
        by_id = self._by_id
        for name, value in arguments.items():
            hit = by_id.get(id(value))
            if hit is not None and hit[1] is value:
                found.append((hit[0], name))
                continue
            if isinstance(value, (list, tuple)):
                elements: Any = value[:MAX_ELEMENTS]
            elif isinstance(value, dict):
                elements = list(value.values())[:MAX_ELEMENTS]
            else:
                continue
            for v in elements:
                hit = by_id.get(id(v))
                if hit is not None and hit[1] is v:
                    found.append((hit[0], name))
        return found


def _canon(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _h(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


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
        self.strings: OrderedDict[str, tuple[str, int]] = OrderedDict()
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
        if isinstance(value, dict) and value.get("$truncated") is True:
            return  # a truncated value's preview is not the value
        # What the step merely passed through from its own input is not its output. Canonical
        # JSON is deterministic, so an equal value appears verbatim inside the input's JSON;
        # a substring test is cheap and errs only towards recording no edge.
        inp = input_json if input_json and len(input_json) <= MAX_INDEXED_BYTES * 4 else b""
        src = (step_id, ended_ns)
        self._add_hash(output_json, src, inp)
        if isinstance(value, list):
            for v in value[:MAX_ELEMENTS]:
                self._add_hash(_canon(v), src, inp)
        elif isinstance(value, dict):
            for v in list(value.values())[:MAX_ELEMENTS]:
                self._add_hash(_canon(v), src, inp)
        for s in _strings(value, 0):
            if len(s) >= MIN_SUBSTRING and not (inp and _canon(s)[1:-1] in inp):
                if s not in self.strings:
                    self.nbytes += len(s) + 64
                self.strings[s] = src
                self.strings.move_to_end(s)
                while len(self.strings) > MAX_STRINGS:
                    old, _ = self.strings.popitem(last=False)
                    self.nbytes -= len(old) + 64

    def _add_hash(self, data: bytes, src: tuple[str, int], passed_from: bytes) -> None:
        if len(data) < MIN_CONTENT_BYTES or (passed_from and data in passed_from):
            return
        key = _h(data)
        if key not in self.hashes:
            self.nbytes += 96
        self.hashes[key] = src
        self.hashes.move_to_end(key)
        while len(self.hashes) > MAX_HASHES:
            self.hashes.popitem(last=False)
            self.nbytes -= 96

    def sources(
        self, input_json: bytes | None, exclude: str, started_ns: int
    ) -> list[tuple[str, str, str]]:
        """(source step id, evidence, parameter) for inputs that carry earlier outputs.

        Only outputs of steps that ended before the consuming step started count.
        """
        if not input_json or (not self.hashes and not self.strings):
            return []
        if len(input_json) > MAX_INDEXED_BYTES * 4:
            return []
        try:
            arguments = orjson.loads(input_json)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(arguments, dict) or arguments.get("$truncated") is True:
            return []
        found: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()

        def hit(src: tuple[str, int] | None, evidence: str, name: str) -> None:
            if src is None:
                return
            source, ended_ns = src
            if source == exclude or ended_ns > started_ns or (source, name) in seen:
                return
            seen.add((source, name))
            found.append((source, evidence, name))

        for name, value in arguments.items():
            if self.hashes:
                for data in _values(value):
                    if len(data) >= MIN_CONTENT_BYTES:
                        hit(self.hashes.get(_h(data)), "content", name)
            if self.strings:
                for s in _strings(value, 0):
                    if len(s) < MIN_SUBSTRING:
                        continue
                    for out, source in self.strings.items():
                        if out != s and out in s:
                            hit(source, "substring", name)
        return found


def _values(value: Any) -> list[bytes]:
    """Canonical JSON of a value and of the values nested one and two levels inside it."""
    out = [_canon(value)]
    level = [value]
    for _ in range(2):
        nxt: list[Any] = []
        for v in level:
            if isinstance(v, list):
                nxt.extend(v[:MAX_ELEMENTS])
            elif isinstance(v, dict):
                nxt.extend(list(v.values())[:MAX_ELEMENTS])
        out.extend(_canon(v) for v in nxt)
        level = nxt
    return out


def _strings(value: Any, depth: int) -> list[str]:
    """String leaves of a JSON value (bounded)."""
    if isinstance(value, str):
        return [value]
    if depth >= 4:
        return []
    out: list[str] = []
    if isinstance(value, list):
        for v in value[:MAX_ELEMENTS]:
            out.extend(_strings(v, depth + 1))
    elif isinstance(value, dict):
        for v in list(value.values())[:MAX_ELEMENTS]:
            out.extend(_strings(v, depth + 1))
    return out[:MAX_ELEMENTS]
