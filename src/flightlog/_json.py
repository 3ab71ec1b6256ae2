"""Compact JSON with sorted keys (orjson), used for stored attributes and evidence."""

from __future__ import annotations

from typing import Any

import orjson

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """Compact JSON text with sorted keys; values orjson cannot encode become their repr."""
    return orjson.dumps(value, option=_OPTS, default=_fallback).decode()


def dumpb(value: Any) -> bytes:
    """As ``dumps`` but bytes."""
    return orjson.dumps(value, option=_OPTS, default=_fallback)


def loads(text: str | bytes | None) -> Any:
    """Parse JSON text; ``None`` and empty text give ``None``."""
    if not text:
        return None
    return orjson.loads(text)


def tidy(value: Any) -> Any:
    """``value`` with every float rounded to 12 significant digits, so arithmetic noise
    (``0.8900000000000001``) is not shown; ints, strings and structure are unchanged."""
    if isinstance(value, float):
        return float(f"{value:.12g}") if value == value and abs(value) != float("inf") else value
    if isinstance(value, dict):
        return {k: tidy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [tidy(v) for v in value]
    return value


def _fallback(value: Any) -> Any:
    if isinstance(value, int):  # beyond 64 bits
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(map(repr, value))
    try:
        return repr(value)
    except Exception:  # a __repr__ that raises
        return f"<{type(value).__name__}>"
