"""Features of captured values that detectors compare against a step's successful history.

A value is described by its JSON type, and (for objects) per top-level field: the field's
type, the size of lists and strings, numbers, short strings (categorical values) and
timestamps. Everything here is pure and works on decoded JSON values.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections.abc import Iterator, Sequence
from typing import Any

ROOT = "$"


# The JSON type of a value of exactly these types (subclasses take the checks below).
_JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def json_type(value: Any) -> str:
    hit = _JSON_TYPES.get(type(value))
    if hit is not None:
        return hit
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def is_empty(value: Any) -> bool:
    """None, "", whitespace, [], {} (or an object whose every field is empty)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple)):
        return len(value) == 0
    if isinstance(value, dict):
        return len(value) == 0 or all(is_empty(v) for v in value.values())
    return False


def fields(value: Any, depth: int = 2, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of the value itself (path ``$``) and of nested object fields."""
    if not prefix:
        yield ROOT, value
    if isinstance(value, list) and not prefix and value and isinstance(value[0], dict):
        yield "[]", value[0]
        yield from fields(value[0], depth - 1, "[]")
    if isinstance(value, dict) and depth > 0:
        for k, v in value.items():
            if isinstance(k, str) and k.startswith("$"):
                continue
            path = f"{prefix}.{k}" if prefix else str(k)
            yield path, v
            if isinstance(v, dict):
                yield from fields(v, depth - 1, path)
            elif isinstance(v, list) and v and isinstance(v[0], dict) and depth > 1:
                # Records in a list: described by the first one.
                yield f"{path}[]", v[0]
                yield from fields(v[0], depth - 1, f"{path}[]")


def field_map(value: Any) -> dict[str, Any]:
    """``dict(fields(value))``, built by assignment instead of through the generators (the
    same paths, values and order: a repeated path keeps its first place and its last value)."""
    out: dict[str, Any] = {}
    _fields_into(out, value, 2, "")
    return out


def _fields_into(out: dict[str, Any], value: Any, depth: int, prefix: str) -> None:
    """``fields(value, depth, prefix)`` assigned into ``out``, step for step."""
    if not prefix:  # (also under a key "": ``fields`` does the same)
        out[ROOT] = value
        if isinstance(value, list) and value and isinstance(value[0], dict):
            out["[]"] = value[0]
            _fields_into(out, value[0], depth - 1, "[]")
    if isinstance(value, dict) and depth > 0:
        for k, v in value.items():
            if isinstance(k, str) and k.startswith("$"):
                continue
            path = f"{prefix}.{k}" if prefix else str(k)
            out[path] = v
            if isinstance(v, dict):
                _fields_into(out, v, depth - 1, path)
            elif isinstance(v, list) and v and isinstance(v[0], dict) and depth > 1:
                first = f"{path}[]"
                out[first] = v[0]
                _fields_into(out, v[0], depth - 1, first)


def size(value: Any) -> int | None:
    if isinstance(value, (str, list, dict)):
        return len(value)
    return None


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def strings(value: Any, limit: int = 200) -> list[str]:
    """Every string inside a value (bounded), keys included for objects, as a list (built in
    one loop: detectors take them all)."""
    out: list[str] = []
    stack = [value]
    push = stack.append
    while stack and len(out) < limit:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                if isinstance(k, str):
                    push(k)
                push(x)
        elif isinstance(v, list):
            stack.extend(v)
    return out


def text_of(value: Any) -> str:
    """A value's text: the string itself, or common text fields of an LLM response object."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("text", "content", "output", "answer", "message", "response", "completion"):
            v = value.get(key)
            if isinstance(v, str):
                return v
            if isinstance(v, dict) and isinstance(v.get("content"), str):
                return str(v["content"])
        choices = value.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            msg = choices[0].get("message") or {}
            if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                return str(msg["content"])
            if isinstance(choices[0].get("text"), str):
                return str(choices[0]["text"])
    return ""


# -- robust statistics ---------------------------------------------------------------------


def sorted_median(xs: Sequence[float]) -> float:
    """``statistics.median`` of values already sorted (the same value, without sorting)."""
    n = len(xs)
    if n % 2:
        return xs[n // 2]
    i = n // 2
    return (xs[i - 1] + xs[i]) / 2


def median_mad(xs: Sequence[float]) -> tuple[float, float]:
    med = statistics.median(xs)
    mad = statistics.median([abs(x - med) for x in xs])
    return med, mad


def robust_z(x: float, xs: Sequence[float]) -> float:
    """|x - median| / (1.4826 * MAD); infinite when MAD is 0 and x differs from the median."""
    med, mad = median_mad(xs)
    if mad == 0:
        spread = (max(xs) - min(xs)) / 2 or abs(med) * 0.05
        if spread == 0:
            return 0.0 if x == med else float("inf")
        return abs(x - med) / spread
    return abs(x - med) / (1.4826 * mad)


def span(xs: Sequence[float]) -> str:
    """The range of typical values, "3–5" or "4": the 10th to the 90th percentile."""
    ordered = sorted(xs)
    lo = ordered[int(0.1 * (len(ordered) - 1))]
    hi = ordered[int(round(0.9 * (len(ordered) - 1)))]
    fmt = _fmt_num
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


def _fmt_num(x: float) -> str:
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.3g}"


# -- timestamps ----------------------------------------------------------------------------

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_TIME_KEYS = re.compile(r"(^|_)(as_of|asof|updated|fetched|cached|timestamp|date|time|at)($|_)")


def timestamp_ns(path: str, value: Any) -> int | None:
    """Nanoseconds since the epoch for ISO-8601 strings, or epoch numbers in time-named fields."""
    if isinstance(value, str) and _ISO.match(value.strip()):
        try:
            t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return int(t.timestamp() * 1e9)
    n = number(value)
    if n is not None and _TIME_KEYS.search(path.rsplit(".", 1)[-1].lower()):
        if 1e9 < n < 1e10:  # seconds
            return int(n * 1e9)
        if 1e12 < n < 1e13:  # milliseconds
            return int(n * 1e6)
        if 1e18 < n < 1e19:  # nanoseconds
            return int(n)
    return None


# -- text patterns ---------------------------------------------------------------------------

ERROR_TEXT = re.compile(
    r"\b(error|exception|traceback|failed|failure|not found|unauthori[sz]ed|forbidden|"
    r"internal server error|service unavailable|bad gateway|rate limit(ed)?|timed? ?out|"
    r"invalid api key|denied)\b",
    re.IGNORECASE,
)
REFUSAL_TEXT = re.compile(
    r"(i'?m sorry,? but i (can(no|')t|am unable|won'?t)|i (can(no|')t|am unable to|won'?t) "
    r"(help|assist|comply|provide|do that)|as an ai( language model)?,? i|i must decline|"
    r"i'?m not able to (help|assist))",
    re.IGNORECASE,
)
INJECTION_TEXT = re.compile(
    r"(ignore (all |any )?(the )?(previous|prior|above) (instructions|prompts?)|"
    r"disregard (all |the )?(previous|prior|above)|you are now |new instructions:|"
    r"system prompt|<\s*script\b|reveal (your|the) (system )?prompt|"
    r"forget (all |everything )?(you|your instructions))",
    re.IGNORECASE,
)


# Literals every match of each pattern contains (lowercase ASCII): ASCII text that holds none
# of them cannot match, and for ASCII text IGNORECASE is ASCII case folding, so ``str.lower``
# and ``in`` decide that without running the pattern over every position.
_LITERALS: dict[re.Pattern[str], tuple[str, ...]] = {
    ERROR_TEXT: (
        "error",
        "exception",
        "traceback",
        "fail",
        "not found",
        "unauthori",
        "forbidden",
        "service unavailable",
        "bad gateway",
        "rate limit",
        "time",
        "invalid api key",
        "denied",
    ),
    REFUSAL_TEXT: (
        "sorry",
        "help",
        "assist",
        "comply",
        "provide",
        "do that",
        "as an ai",
        "decline",
        "not able to",
    ),
    INJECTION_TEXT: (
        "ignore ",
        "disregard ",
        "you are now ",
        "new instructions:",
        "system prompt",
        "script",
        "reveal ",
        "forget ",
    ),
}


# The same, by the pattern's identity: a compiled pattern's hash is not cached and covers its
# whole compiled program (~8,000 instructions for these three, more than the check saves), so
# ``search`` looks its literals up by ``id`` (the patterns live as long as the module).
_LITERALS_BY_ID: dict[int, tuple[str, ...]] = {id(p): lits for p, lits in _LITERALS.items()}


def may_match_json(pattern: re.Pattern[str], raw: bytes) -> bool:
    """False only when no text read from the JSON bytes ``raw`` can match ``pattern`` (one of
    the patterns above): ASCII JSON with no escape holds every string of its value (keys,
    values, JSON text inside a string) as it is, so when none of the literals every match
    contains is in it, ``search`` finds nothing in any of those strings, nor in them joined
    with line breaks. True (look) for other patterns, non-ASCII or escaped JSON. (Checked
    as text: ``in`` over bytes costs about twice as much.)"""
    literals = _LITERALS_BY_ID.get(id(pattern))
    if literals is None or not raw.isascii():
        return True
    text = raw.decode("ascii")
    if "\\" in text:
        return True
    low = text.lower()
    for lit in literals:  # noqa: SIM110 (a loop, not any(): no generator per call)
        if lit in low:
            return True
    return False


def search(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """``pattern.search(text)`` for the patterns above, skipping ASCII text that holds none
    of the literals every match contains (the same answer, without the scan)."""
    literals = _LITERALS_BY_ID.get(id(pattern))
    if literals is not None and text.isascii():
        low = text.lower()
        for lit in literals:  # (a loop, not any(): no generator per call)
            if lit in low:
                break
        else:
            return None
    return pattern.search(text)
