"""Ledger entries: the canonical JSON (RFC 8785) of one record, sensitive values committed.

An entry is::

    {"v": 1, "kind": K, "id": RECORD_ID, "time": "<ns appended>", "data": {...}}

``kind`` is ``run.start``, ``run.end``, ``step``, ``edge``, ``finding`` or the kind a
capability passed to ``Store.audit`` (``attribution``, ``incident.transition``,
``alert.sent``, ``redaction``, ...). ``data`` is the record as the store holds it (the model's
``to_dict`` form), with every ``*_ns`` timestamp as a decimal string (see ``canonical``).
Only facts are logged: a step's ``index`` (the rank of its start within the run) is derived
state, recomputed whenever a late span of the run arrives, so it is not part of the entry.

Sensitive values never enter the leaf. Each is replaced by ``{"$commit": base64(SHA-256(salt ||
canonical value))}`` with a fresh 16-byte random salt; the value and its salt (an *opening*)
are stored beside the entry (``ledger_entries.openings``, never hashed) and deleted by
redaction. Which values are
sensitive: the fields in ``LedgerConfig.committed_fields`` (input/output payload hashes, run
reasons, finding messages, error messages and tracebacks); the attributes and the evidence,
each map as one commitment (``commit_all_attributes``, the default; else only keys that match
``LedgerConfig.sensitive_patterns``, start with ``sensitive.`` or are listed in the record's
``flightlog.sensitive`` attribute); and in capabilities' audit records, the free-text keys
(``FREE_TEXT_KEYS``: summaries, evidence, causes, notes, reasons) and sensitive keys.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from flightlog import _json
from flightlog.ledger import canonical
from flightlog.ledger.config import FREE_TEXT_KEYS, SENSITIVE_MARK, LedgerConfig
from flightlog.model import DEFAULT_PROJECT, Edge, ErrorInfo, Finding, Run, Step

_sha256 = hashlib.sha256
_b64 = binascii.b2a_base64
COMMIT = "$commit"
REDACTED = "[redacted]"
_prepare = canonical.prepare
_float_fix = canonical._float
_dumps = orjson.dumps
_dumps_map = canonical.dumps_map
_canonical_dumps = canonical.dumps
_SORT = orjson.OPT_SORT_KEYS
_Fragment = orjson.Fragment
_ORJSON_ES = canonical._ORJSON_ES


_PREFIXES: dict[str, bytes] = {}


def _opening_prefix(key: str) -> bytes:
    """``[["key"],"`` : how an opening of a top-level key starts (kept for a few keys)."""
    prefix = b"[" + orjson.dumps([key]) + b',"'
    if len(_PREFIXES) < 64:
        _PREFIXES[key] = prefix
    return prefix


_MAX = canonical.MAX_SAFE_INT
# containers of free-form keys, per record kind
_KEYED = ("attributes", "evidence")

Path = tuple[str, ...]


@dataclass(slots=True)
class Encoded:
    """One entry ready to append."""

    kind: str
    record_id: str
    run_id: str | None
    time_ns: int
    entry: bytes
    openings: bytes | None  # canonical JSON [[path, salt_b64, value], ...]


def _ns(v: int | None) -> str | None:
    return None if v is None else str(v)


def _int(v: int | None) -> Any:
    if v is None or -_MAX <= v <= _MAX:
        return v
    return str(v)


def _float(v: float | None) -> Any:
    return None if v is None else _prepare(float(v))


def _err(e: ErrorInfo | None) -> Any:
    if e is None:
        return None
    return {
        "type": e.type,
        "message": e.message,
        "traceback": e.traceback,
        "origin_step_id": e.origin_step_id,
    }


_PLAIN = (str, bool, float, type(None))


def _stored(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as the store keeps them (its JSON round trip; skipped when it is the
    identity: string keys and plain scalar values)."""
    if not attrs:
        return {}
    for k, v in attrs.items():
        t = type(v)
        if (
            type(k) is not str
            or not (t in _PLAIN or (t is int and -(2**63) <= v < 2**63))
            or (t is float and v != v)
        ):
            break
    else:
        return attrs
    out: dict[str, Any] = orjson.loads(_json.dumpb(attrs))
    return out


def _map_texts(attrs: dict[str, Any]) -> tuple[bytes, bytes]:
    """(canonical JSON, orjson JSON) of an attribute map as the store keeps it: what a
    committed map's commitment hashes and what its opening shows. ``_stored``, then
    ``canonical.dumps_map`` and ``orjson.dumps``, in one pass over a flat map of ASCII
    string keys and plain values (the common case); anything else takes those three."""
    fix = False
    for k, v in attrs.items():
        t = type(v)
        if type(k) is not str:
            break
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if -_MAX <= v <= _MAX:
                continue
            break
        if t is float:
            if v - v != 0.0:  # NaN, infinities: the store's round trip makes them null
                break
            if v.is_integer() or 1e-7 <= abs(v) < 1e-4:
                fix = True
            continue
        break
    else:
        shown = _dumps(attrs)
        # ASCII keys: orjson's key order (code points) is then RFC 8785's (UTF-16 units)
        if shown.isascii() or "".join(attrs).isascii():
            if fix or not _ORJSON_ES:
                return _dumps(
                    {k: _float_fix(v) if type(v) is float else v for k, v in attrs.items()},
                    option=_SORT,
                ), shown
            return _dumps(attrs, option=_SORT), shown
    value = _stored(attrs)
    return _dumps_map(value), _dumps(value)


def _texts(value: Any) -> tuple[bytes, bytes]:
    """(canonical JSON, orjson JSON) of a value to commit: what its commitment hashes and
    what its opening shows."""
    t = type(value)
    if t is str:
        text = _dumps(value)
        return text, text
    if t is dict:
        return _dumps_map(value), _dumps(value)
    return _canonical_dumps(value), _dumps(value)


def run_data(r: Run) -> dict[str, Any]:
    data = {
        "id": r.id,
        "workflow": r.workflow,
        "version": r.version,
        "owner": r.owner,
        "service": r.service,
        "status": r.status,
        "started_ns": _ns(r.started_ns),
        "ended_ns": _ns(r.ended_ns),
        "input_hash": r.input_hash,
        "output_hash": r.output_hash,
        "reason": r.reason,
        "failed_step_id": r.failed_step_id,
        "error": _err(r.error),
        "declared_steps": _int(r.declared_steps),
        "source": r.source,
        "attributes": _stored(r.attributes),
    }
    # Which project may read the run (set once, when first stored). Only when not the
    # default, so a run of the default project is logged as before projects existed.
    if r.project != DEFAULT_PROJECT:
        data["project"] = r.project
    return data


def step_data(s: Step) -> dict[str, Any]:
    # Runs for every step recorded: the common cases of ``_ns``, ``_float`` and ``_stored``
    # inlined.
    started, ended, cost, attrs = s.started_ns, s.ended_ns, s.cost, s.attributes
    return {
        "run_id": s.run_id,
        "id": s.id,
        "parent_id": s.parent_id,
        "name": s.name,
        "kind": s.kind,
        "agent": s.agent,
        "owner": s.owner,
        "status": s.status,
        "started_ns": None if started is None else str(started),
        "ended_ns": None if ended is None else str(ended),
        "input_hash": s.input_hash,
        "output_hash": s.output_hash,
        "error": None if s.error is None else _err(s.error),
        "model": s.model,
        "provider": s.provider,
        "input_tokens": _int(s.input_tokens),
        "output_tokens": _int(s.output_tokens),
        "cost": None if cost is None else _float_fix(cost) if type(cost) is float else _float(cost),
        "attributes": _stored(attrs) if attrs else {},
    }


def edge_data(e: Edge) -> dict[str, Any]:
    return {
        "run_id": e.run_id,
        "source": e.source,
        "target": e.target,
        "kind": e.kind,
        "evidence": e.evidence,
        "detail": e.detail,
    }


def finding_data(f: Finding) -> dict[str, Any]:
    data = {
        "id": f.id,
        "run_id": f.run_id,
        "step_id": f.step_id,
        "detector": f.detector,
        "severity": f.severity,
        "message": f.message,
        "evidence": _stored(f.evidence),
        "created_ns": _ns(f.created_ns),
    }
    # Only when set: entries logged before findings had a kind still match their records.
    if f.kind is not None:
        data["kind"] = f.kind
    return data


def edge_id(e: Edge) -> str:
    return f"{e.run_id}/{e.source}>{e.target}/{e.kind}"


def step_record_id(run_id: str, step_id: str) -> str:
    return f"{run_id}/{step_id}"


class _SaltPool:
    """Random salts for commitments, drawn from the OS in blocks.

    ``os.urandom`` is a system call (tens of microseconds where system calls are costly);
    one call per entry dominated the cost of appending a step. Bytes are handed out once
    each; a forked child discards the parent's block so no salt is ever reused.
    """

    BLOCK = 64 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._pos + n > len(self._buf):
                self._buf = os.urandom(max(self.BLOCK, n))
                self._pos = 0
            out = self._buf[self._pos : self._pos + n]
            self._pos += n
            return out

    def reset(self) -> None:
        with self._lock:
            self._buf, self._pos = b"", 0


_salts = _SaltPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_salts.reset)


def commitment(salt: bytes, value: Any) -> str:
    """base64(SHA-256(salt || canonical JSON of value))."""
    # A string's, a boolean's, null's and a safe integer's RFC 8785 form is orjson's (the
    # common cases: payload hashes, attribute values).
    t = type(value)
    fast = t is str or t is bool or value is None or (t is int and -_MAX <= value <= _MAX)
    text = orjson.dumps(value) if fast else canonical.dumps(value)
    return _b64(_sha256(salt + text).digest(), newline=False).decode()


class Encoder:
    """Turns records into ``Encoded`` entries under a ``LedgerConfig``."""

    def __init__(
        self, config: LedgerConfig, *, salts: Callable[[int], bytes] | None = None
    ) -> None:
        """``salts(n)`` gives ``n`` fresh random bytes (default: a pool of OS randomness)."""
        self.config = config
        self._fields: list[Path] = [tuple(f.split(".")) for f in config.committed_fields]
        # The same fields split by depth, for the hot path: top-level keys, and paths below.
        self._top = [f[0] for f in self._fields if len(f) == 1]
        self._deep = [f for f in self._fields if len(f) > 1]
        self._all = config.commit_all_attributes
        self._sensitive_cache: dict[str, bool] = {}
        self._salt = _salts.take if salts is None else salts
        # Records ``encode_known`` leaves to ``encode``: those where one of these holds a map
        # (an error, or the parent of a nested committed field).
        self._parents = tuple(dict.fromkeys(["error", *(f[0] for f in self._deep)]))
        # ``encode_steps`` builds step entries itself for the default set of committed step
        # fields (the payload hashes at the top level, the attributes whole, nothing below
        # the attributes); any other configuration takes ``encode_known``.
        step_keys = {"run_id", "id", "parent_id", "name", "kind", "agent", "owner", "status",
                     "started_ns", "ended_ns", "input_hash", "output_hash", "error", "model",
                     "provider", "input_tokens", "output_tokens", "cost", "attributes"}  # fmt: skip
        self._steps_fast = (
            self._all
            and [k for k in self._top if k in step_keys] == ["input_hash", "output_hash"]
            and all(p not in step_keys or p == "error" for p in self._parents)
        )

    def _is_sensitive(self, key: str) -> bool:
        hit = self._sensitive_cache.get(key)
        if hit is None:
            hit = self.config.is_sensitive(key)
            if len(self._sensitive_cache) < 10_000:
                self._sensitive_cache[key] = hit
        return hit

    def sensitive_paths(self, data: dict[str, Any], top_level_keys: bool = False) -> list[Path]:
        """The paths in ``data`` whose values go into commitments (committed fields in the
        configured order, then the keyed containers)."""
        get = data.get
        paths: list[Path]
        if self._deep and any(type(get(f[0])) is dict for f in self._deep):
            paths = [
                f
                for f in self._fields
                if (get(f[0]) if len(f) == 1 else get_path(data, f)) is not None
            ]
        else:  # no field below the top level can be set (the common case: no error)
            paths = [(k,) for k in self._top if get(k) is not None]
        for container in _KEYED:
            inner = get(container)
            if not inner or type(inner) is not dict:
                continue
            if self._all:
                # The whole map in one commitment: one salt and one hash per record instead
                # of one per attribute (the keys are in the opening, beside the value).
                paths.append((container,))
                continue
            marked = inner.get(SENSITIVE_MARK)
            marked_set = (
                {m for m in marked if type(m) is str} if isinstance(marked, list) else set()
            )
            for key, value in inner.items():
                if value is None or key == SENSITIVE_MARK:
                    continue
                if key in marked_set or self._is_sensitive(key):
                    paths.append((container, key))
        if top_level_keys:
            for key, value in data.items():
                if (
                    value is not None
                    and not any(p[0] == key for p in paths)
                    and not (key in _KEYED and type(value) is dict)
                    and (key in FREE_TEXT_KEYS or self._is_sensitive(key))
                ):
                    paths.append((key,))
        return paths

    def encode(
        self,
        kind: str,
        record_id: str,
        run_id: str | None,
        data: dict[str, Any],
        time_ns: int,
        *,
        top_level_keys: bool = False,
    ) -> Encoded:
        paths = self.sensitive_paths(data, top_level_keys)
        openings: bytes | None = None
        if paths:
            salts = self._salt(16 * len(paths))
            opened = []
            copied: set[str] = set()
            for i, path in enumerate(paths):
                salt = salts[16 * i : 16 * i + 16]
                if len(path) == 1:
                    key = path[0]
                    value = data[key]
                    data[key] = {COMMIT: commitment(salt, value)}
                    opened.append([[key], _b64(salt, newline=False).decode(), value])
                    continue
                parent = data
                if len(path) == 2:  # inside a container: copied once, never the caller's
                    top = path[0]
                    if top not in copied:
                        data[top] = dict(data[top])
                        copied.add(top)
                    parent = data[top]
                else:
                    for key in path[:-1]:
                        child = dict(parent[key])  # a copy: never mutate the caller's value
                        parent[key] = child
                        parent = child
                value = parent[path[-1]]
                parent[path[-1]] = {COMMIT: commitment(salt, value)}
                opened.append([list(path), _b64(salt, newline=False).decode(), value])
            openings = orjson.dumps(opened)  # stored beside the log, never hashed
        entry = canonical.dumps_prepared(
            {
                "v": 1,
                "kind": kind,
                "id": record_id,
                "time": str(time_ns),
                "data": {k: _prepare(v) for k, v in data.items()}
                if top_level_keys
                else _prepare_known(data),
            }
        )
        return Encoded(kind, record_id, run_id, time_ns, _compact(entry), openings)

    def encode_known(
        self, kind: str, record_id: str, run_id: str | None, data: dict[str, Any], time_ns: int
    ) -> Encoded:
        """``encode`` of a record built by a ``*_data`` function (``data`` is then owned by
        the encoder and changed in place): the same bytes, without the generic walks. Its
        values are known safe but for the free-form maps, which are committed whole (the
        default ``commit_all_attributes``; else ``encode`` commits them key by key). A record
        with an error, or with a map where a nested field is committed, takes ``encode``."""
        get = data.get
        if not self._all:
            return self.encode(kind, record_id, run_id, data, time_ns)
        for parent in self._parents:
            if type(get(parent)) is dict:
                return self.encode(kind, record_id, run_id, data, time_ns)
        committed = []
        for k in self._top:
            if get(k) is not None:
                committed.append(k)
        for k in _KEYED:
            inner = get(k)
            if inner and type(inner) is dict:
                committed.append(k)
        openings = None
        if committed:
            # Each commitment and opening assembled as bytes: ``{"$commit":"<base64>"}`` in
            # the entry (embedded as is), ``[[key],"<salt>",value]`` in the openings (as
            # orjson writes ``[[[key], salt, value], ...]``).
            salts = self._salt(16 * len(committed))
            opened = []
            at = 0
            for key in committed:
                value = data[key]
                salt = salts[at : at + 16]
                at += 16
                if type(value) is str:
                    text = shown = _dumps(value)
                else:
                    text, shown = _texts(value)
                data[key] = _Fragment(
                    b'{"$commit":"' + _b64(_sha256(salt + text).digest(), newline=False) + b'"}'
                )
                prefix = _PREFIXES.get(key) or _opening_prefix(key)
                opened.append(prefix + _b64(salt, newline=False) + b'",' + shown + b"]")
            openings = b"[" + b",".join(opened) + b"]"  # stored beside the log, never hashed
        entry = _dumps(
            {"v": 1, "kind": kind, "id": record_id, "time": str(time_ns), "data": data},
            option=_SORT,
        )
        return Encoded(kind, record_id, run_id, time_ns, _compact(entry), openings)

    def encode_steps(self, steps: Sequence[Step], time_ns: int) -> list[Encoded]:
        """The entries of stored steps: for each, the bytes of ``encode_known("step",
        step_record_id(...), s.run_id, step_data(s), time_ns)``, with the step's record,
        commitments, openings and entry built in one pass, and the salts of consecutive
        steps drawn in one call (the same salt stream, in the same order). What the write
        hook runs for every stored step. Steps with an error, and encoders whose
        configuration commits other step fields, take ``encode_known``."""
        if not self._steps_fast:
            return [
                self.encode_known(
                    "step", step_record_id(s.run_id, s.id), s.run_id, step_data(s), time_ns
                )
                for s in steps
            ]
        out: list[Encoded] = []
        plain: list[Step] = []
        count = 0  # the salts the plain steps take
        for s in steps:
            attrs = s.attributes
            if s.error is None and type(attrs) is dict:
                plain.append(s)
                count += (s.input_hash is not None) + (s.output_hash is not None) + bool(attrs)
                continue
            if plain:
                out += self._encode_plain_steps(plain, count, time_ns)
                plain = []
                count = 0
            rid = step_record_id(s.run_id, s.id)
            out.append(self.encode_known("step", rid, s.run_id, step_data(s), time_ns))
        if plain:
            out += self._encode_plain_steps(plain, count, time_ns)
        return out

    def _encode_plain_steps(self, steps: list[Step], count: int, time_ns: int) -> list[Encoded]:
        """``encode_steps`` of steps without an error, the input and output hashes and the
        attributes committed (the default configuration); ``count`` salts in all."""
        salts = self._salt(16 * count) if count else b""
        at = 0
        sha, b64, dumps, frag, fix, es = _sha256, _b64, _dumps, _Fragment, _float_fix, _ORJSON_ES
        commit, openings_of = _COMMIT_FORM, _STEP_OPENINGS
        when = str(time_ns)
        out: list[Encoded] = []
        add = out.append
        for s in steps:
            # Each commitment: its fragment in the entry, and its salt's base64 and value's
            # JSON for the openings (written whole from _STEP_OPENINGS, by which are set).
            ih: Any = s.input_hash
            oh: Any = s.output_hash
            attrs: Any = s.attributes
            shown: tuple[bytes, ...] = ()
            which = 0
            if ih is not None:
                salt = salts[at : at + 16]
                at += 16
                if type(ih) is str:
                    text = ih_shown = dumps(ih)
                else:
                    text, ih_shown = _texts(ih)
                ih = frag(commit % b64(sha(salt + text).digest(), newline=False))
                shown = (b64(salt, newline=False), ih_shown)
                which = 1
            if oh is not None:
                salt = salts[at : at + 16]
                at += 16
                if type(oh) is str:
                    text = oh_shown = dumps(oh)
                else:
                    text, oh_shown = _texts(oh)
                oh = frag(commit % b64(sha(salt + text).digest(), newline=False))
                shown += (b64(salt, newline=False), oh_shown)
                which |= 2
            if attrs:
                salt = salts[at : at + 16]
                at += 16
                text, attrs_shown = _map_texts(attrs)
                attrs = frag(commit % b64(sha(salt + text).digest(), newline=False))
                shown += (b64(salt, newline=False), attrs_shown)
                which |= 4
            else:
                attrs = {}
            openings = openings_of[which] % shown if which else None
            started, ended, cost, itok, otok = (
                s.started_ns,
                s.ended_ns,
                s.cost,
                s.input_tokens,
                s.output_tokens,
            )
            if cost is not None:
                if type(cost) is not float:
                    cost = _float(cost)
                elif not (
                    es
                    and cost - cost == 0.0
                    and not cost.is_integer()
                    and not 1e-7 <= abs(cost) < 1e-4
                ):
                    cost = fix(cost)  # (else orjson writes it as ECMAScript does: kept)
            run_id = s.run_id
            rid = f"{run_id}/{s.id}"
            # step_data's record, its keys in sorted order
            data = {
                "agent": s.agent,
                "attributes": attrs,
                "cost": cost,
                "ended_ns": None if ended is None else str(ended),
                "error": None,
                "id": s.id,
                "input_hash": ih,
                "input_tokens": itok if itok is None or -_MAX <= itok <= _MAX else str(itok),
                "kind": s.kind,
                "model": s.model,
                "name": s.name,
                "output_hash": oh,
                "output_tokens": otok if otok is None or -_MAX <= otok <= _MAX else str(otok),
                "owner": s.owner,
                "parent_id": s.parent_id,
                "provider": s.provider,
                "run_id": run_id,
                "started_ns": None if started is None else str(started),
                "status": s.status,
            }
            entry = dumps(
                {"data": data, "id": rid, "kind": "step", "time": when, "v": 1}, option=_SORT
            )
            # a compact copy (see _compact)
            add(Encoded("step", rid, run_id, time_ns, b"".join((entry, b"")), openings))
        return out


# ``{"$commit":"<base64>"}``: a commitment in an entry.
_COMMIT_FORM = b'{"$commit":"%b"}'
# A step's openings, as orjson writes ``[[[key], salt, value], ...]``, for each set of its
# committed fields present (bit 1: input hash, 2: output hash, 4: attributes): salts'
# base64 and values' JSON, in that order.
_STEP_OPENINGS = [
    b"["
    + b",".join(
        b'[["' + key + b'"],"%b",%b]'
        for bit, key in ((1, b"input_hash"), (2, b"output_hash"), (4, b"attributes"))
        if which & bit
    )
    + b"]"
    for which in range(8)
]


def _compact(data: bytes) -> bytes:
    """A copy of ``data`` that owns no more memory than it holds. orjson returns its whole
    output buffer (about 8 KB) however short the JSON: entries kept for a batch, or longer,
    would each hold that much (measured: 2 page faults and several microseconds per entry)."""
    return b"".join((data, b""))


def _prepare_known(data: dict[str, Any]) -> dict[str, Any]:
    """Records built by the ``*_data`` functions are already safe except free-form maps (a
    map replaced by its commitment is safe: one ASCII key, one string)."""
    for key in ("attributes", "evidence", "error"):
        v = data.get(key)
        if v and not (len(v) == 1 and COMMIT in v):
            data[key] = _prepare(v)
    return data


def get_path(data: dict[str, Any], path: Path) -> Any:
    cur: Any = data
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def set_path(data: dict[str, Any], path: Path, value: Any) -> None:
    cur = data
    for key in path[:-1]:
        cur = cur.setdefault(key, {})
    cur[path[-1]] = value


def committed_paths(data: dict[str, Any]) -> list[Path]:
    """Paths in an entry's ``data`` that hold a commitment."""
    out: list[Path] = []
    for key, value in data.items():
        if isinstance(value, dict):
            if set(value) == {COMMIT}:
                out.append((key,))
            else:
                for k2, v2 in value.items():
                    if isinstance(v2, dict) and set(v2) == {COMMIT}:
                        out.append((key, k2))
    return out
