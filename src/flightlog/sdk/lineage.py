"""The SDK's side of lineage: identity, captured on the caller's thread.

``identity``: the very object a step returned (or one of its elements) is passed to a later
step, found by ``id()`` (``IdentityIndex``); the caller's thread pays only for this check.
Content, substring and tool-call matching run on the background writer through the one
lineage engine every front door uses (``flightlog.lineage.ContentIndex``), over the JSON
snapshots taken when each step was called. State is bounded per run and released when the run
ends.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from flightlog.lineage import MAX_ELEMENTS, MIN_SUBSTRING, ContentIndex

__all__ = ["ContentIndex", "IdentityIndex", "identity_indexable"]

MAX_IDENTITIES = 256  # output objects remembered per run for identity matching
_SKIP_IDENTITY = (type(None), bool, int, float, complex)


def identity_indexable(value: Any) -> bool:
    """Whether ``value`` can be evidence by identity: not a number, None, or a short text
    (those are shared by coincidence, interned or cached by the interpreter)."""
    return not isinstance(value, _SKIP_IDENTITY) and not (
        isinstance(value, str) and len(value) < MIN_SUBSTRING
    )


class IdentityIndex:
    """Objects returned by a run's steps, by ``id()``, on the caller's side.

    Holds a reference to each object so its ``id`` cannot be reused while it is indexed.
    Bounded: the oldest entries are forgotten first.
    """

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: OrderedDict[int, tuple[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_id)

    def add_output(self, step_id: str, value: Any) -> None:
        if not identity_indexable(value):
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
