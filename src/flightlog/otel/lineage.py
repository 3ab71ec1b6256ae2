"""Step order and data lineage for ingested traces, where neither is declared.

- **Order.** A step's index is the 1-based rank of its start time within its run (ties
  broken by span id). Spans of one trace can arrive in any order and over many requests, so
  the server recomputes the indices of a run's steps inside the transaction that stores new
  spans of that run (``Store.write(..., reorder=...)``): readers always see a consistent
  order. The order is derived state; the audit ledger does not log it.
- **Data edges.** An output of step A that reappears in the input of a step B that started
  after A ended is a data edge A -> B: with evidence ``content`` when the canonical JSON of
  A's output equals B's input or one of its top-level values (``detail`` names the key), and
  ``substring`` when A's output is a string of at least ``MIN_SUBSTRING`` characters found
  inside B's input. When several earlier steps produced the same output (a wrapper passing
  its child's result through), the edge comes from the one that ended last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson

from flightlog.model import Edge

MIN_SUBSTRING = 16


class StepLike(Protocol):
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


def _canon(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _meaningful(value: Any) -> bool:
    """Outputs too generic to be evidence of a data flow: null, booleans, numbers, empties."""
    if isinstance(value, str):
        return len(value.strip()) > 0
    if isinstance(value, (list, dict)):
        return len(value) > 0
    return False


def _is_marker(value: Any) -> bool:
    return isinstance(value, dict) and value.get("$truncated") is True


def infer_data_edges(
    steps: Sequence[StepLike],
    payloads: Mapping[str, bytes],
    new_ids: set[str] | None = None,
) -> list[Edge]:
    """Data edges between ``steps`` inferred from their input and output payloads.

    ``payloads`` maps hash -> canonical JSON bytes. With ``new_ids``, only pairs where the
    source or the target is one of those steps are examined (the rest were examined when
    they arrived).
    """
    sources: list[tuple[StepLike, bytes, Any, str | None]] = []
    for s in steps:
        if s.ended_ns is None or not s.output_hash or s.output_hash not in payloads:
            continue
        data = payloads[s.output_hash]
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not _meaningful(value) or _is_marker(value):
            continue
        needle = None
        if isinstance(value, str) and len(value) >= MIN_SUBSTRING:
            needle = _canon(value).decode()[1:-1]  # as it appears inside JSON text
        sources.append((s, data, value, needle))
    if not sources:
        return []
    edges: list[Edge] = []
    for t in steps:
        if not t.input_hash or t.input_hash not in payloads:
            continue
        in_bytes = payloads[t.input_hash]
        in_value: Any = None
        in_text: str | None = None
        try:
            in_value = orjson.loads(in_bytes)
        except orjson.JSONDecodeError:
            continue
        if _is_marker(in_value):
            continue
        top: dict[bytes, str] = {}
        if isinstance(in_value, dict):
            for k, v in in_value.items():
                top.setdefault(_canon(v), str(k))
        best: dict[bytes, tuple[StepLike, str, str | None]] = {}
        for s, out_bytes, _value, needle in sources:
            if s.id == t.id or s.ended_ns is None or s.ended_ns > t.started_ns:
                continue
            if new_ids is not None and s.id not in new_ids and t.id not in new_ids:
                continue
            match: tuple[str, str | None] | None = None
            if out_bytes == in_bytes:
                match = ("content", None)
            elif out_bytes in top:
                match = ("content", top[out_bytes])
            elif needle is not None:
                if in_text is None:
                    in_text = in_bytes.decode("utf-8", errors="replace")
                if needle in in_text:
                    match = ("substring", None)
            if match is None:
                continue
            prev = best.get(out_bytes)
            if prev is None or (prev[0].ended_ns or 0) < (s.ended_ns or 0):
                best[out_bytes] = (s, match[0], match[1])
        for s, evidence, detail in best.values():
            edges.append(
                Edge(
                    run_id=t.run_id,
                    source=s.id,
                    target=t.id,
                    kind="data",
                    evidence=evidence,
                    detail=detail,
                )
            )
    return edges
