"""Canonical JSON for ledger entries: byte-identical to RFC 8785 (JCS), at orjson speed.

RFC 8785 serialises like ECMAScript's ``JSON.stringify`` with object members sorted by their
names' UTF-16 code units (§3.2.3), numbers in ECMAScript's shortest form (§3.2.2.3) and
strings escaped minimally (§3.2.2.2). orjson with sorted keys already matches it for
strings, integers, booleans and null, and sorts keys by code point, which equals UTF-16
order unless a key holds characters beyond U+FFFF. So ``prepare`` walks a value once and
fixes the rest:

- floats become pre-serialised ``orjson.Fragment`` s in ECMAScript form (``1.0`` -> ``1``,
  ``1e21`` -> ``1e+21``); NaN and infinities, which JSON cannot hold (and which Flightlog's
  store already writes as null), become null;
- integers outside ±(2**53 - 1) become decimal strings. RFC 8785 §3.2.2.3 requires I-JSON
  numbers (RFC 7493 §2.2), which cannot hold them exactly, and the ``rfc8785`` package
  rejects them; nanosecond timestamps (about 1.7e18) are such integers, so entries carry
  every ``*_ns`` field as a string;
- an object with a key beyond U+FFFF is serialised by a small pure-Python RFC 8785 encoder
  (``_jcs``) and embedded as a fragment.

A hypothesis test checks ``dumps`` against the ``rfc8785`` package on arbitrary values.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

MAX_SAFE_INT = 2**53 - 1
_OPTS = orjson.OPT_SORT_KEYS
_Fragment = orjson.Fragment


def es6_number(x: float) -> str:
    """ECMAScript Number::toString (ECMA-262 §6.1.6.1.20) for a finite float.

    Python's ``repr`` already gives the shortest digits that round-trip (as ECMAScript
    requires); only the layout differs.
    """
    if x == 0:
        return "0"  # also -0.0
    sign = "-" if x < 0 else ""
    text = repr(abs(x))
    mantissa, _, exp_text = text.partition("e")
    exp = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    if frac_part == "0":
        frac_part = ""
    digits = (int_part + frac_part).lstrip("0")
    # value = 0.digits * 10**n
    n = (
        len(int_part.lstrip("0")) + exp
        if int_part.strip("0")
        else exp - (len(frac_part) - len(frac_part.lstrip("0")))
    )
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-")
        out += str(abs(e))
    return sign + out


def _float(x: float) -> Any:
    # Most floats (finite, not integral, outside the band where the two switch notation)
    # orjson already writes as ECMAScript does: kept as they are (checked at import).
    if x - x == 0.0 and not x.is_integer() and not 1e-7 <= abs(x) < 1e-4 and _ORJSON_ES:
        return x
    if x != x or x in (_INF, _NINF):
        return None
    if x == 0:
        return _ZERO  # also -0.0
    text = repr(x)
    # Python writes 1e-4 <= |x| < 1e16 without an exponent and with the same shortest
    # digits as ECMAScript, which differs there only in dropping a trailing ".0".
    if "e" not in text and "n" not in text:
        return _Fragment((text[:-2] if text.endswith(".0") else text).encode())
    return _Fragment(es6_number(x).encode())


_ZERO = _Fragment(b"0")
_INF = math.inf
_NINF = -math.inf


def _orjson_writes_es_floats() -> bool:
    """Whether this orjson writes non-integral floats outside 1e-7..1e-4 in ECMAScript form
    (its shortest digits, the same notation): true of the orjson versions Flightlog was
    tested with; if a version changes its notation, ``_float`` formats every float itself."""
    samples = (
        0.1,
        0.2,
        0.00042,
        0.1 + 0.2,
        -2.5,
        1234567.891,
        2251799813685247.5,
        1.5e-7,
        9.99e-8,
        2.5e-300,
        5e-324,
        1.2345e-4,
        -7.77e-12,
        123.456e10 + 0.5,
    )
    return all(orjson.dumps(x) == es6_number(x).encode() for x in samples)


_ORJSON_ES = _orjson_writes_es_floats()


def prepare(value: Any) -> Any:
    """A copy of a JSON-like value that orjson (sorted keys) serialises as RFC 8785."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if t is float:
        return _float(value)
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                k = str(k)
            tv = type(v)
            # plain scalars need no work (the common case for attributes)
            if tv is str or tv is bool or v is None:
                out[k] = v
            elif tv is float:
                out[k] = _float(v)
            else:
                out[k] = prepare(v)
        if not "".join(out).isascii() and any(max(k, default="\0") > "\uffff" for k in out):
            return _Fragment(_jcs(out).encode())
        return out
    if t is list or t is tuple:
        return [prepare(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return prepare(int(value))
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return prepare(dict(value))
    if isinstance(value, (list, tuple)):
        return [prepare(v) for v in value]
    if isinstance(value, _Fragment):
        return value
    return str(value)


def dumps(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value`` (after ``prepare``)."""
    return orjson.dumps(prepare(value), option=_OPTS)


def dumps_map(value: dict[str, Any]) -> bytes:
    """``dumps`` of a dict, without the walk when it is flat: string keys of ASCII and plain
    scalar values (strings, booleans, null, safe integers, floats), the common form of
    attributes and evidence. Anything else takes ``dumps``."""
    floats = False
    for k, v in value.items():
        if type(k) is not str:
            return dumps(value)
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int and -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
            continue
        if t is float:
            if not (v - v == 0.0 and not v.is_integer() and not 1e-7 <= abs(v) < 1e-4):
                floats = True
            continue
        return dumps(value)
    # ASCII keys: orjson's sort (by code point) is then RFC 8785's (by UTF-16 code unit)
    if not "".join(value).isascii():
        return dumps(value)
    if floats or not _ORJSON_ES:
        value = {k: _float(v) if type(v) is float else v for k, v in value.items()}
    return orjson.dumps(value, option=_OPTS)


def dumps_prepared(value: Any) -> bytes:
    """Serialise a value whose unsafe parts the caller already ran through ``prepare``."""
    return orjson.dumps(value, option=_OPTS)


def _jcs(value: Any) -> str:
    """Pure-Python RFC 8785 of a prepared value (fragments are emitted verbatim)."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(orjson.dumps(k).decode() + ":" + _jcs(v) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    return orjson.dumps(value).decode()  # scalars and fragments
