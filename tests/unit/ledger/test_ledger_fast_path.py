"""The encoder's fast path (``Encoder.encode_known``, used for every stored run, step, edge
and finding) writes the very bytes of the generic path (``Encoder.encode``), and both write
the bytes the encoder wrote before the fast path existed (golden entries from 02ed9fd), so
existing ledgers keep verifying."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from flightlog.ledger import canonical
from flightlog.ledger.config import LedgerConfig
from flightlog.ledger.entry import (
    Encoder,
    edge_data,
    edge_id,
    finding_data,
    run_data,
    step_data,
    step_record_id,
)
from flightlog.model import Edge, ErrorInfo, Finding, Run, Step
from tests.unit.ledger.test_ledger_canonical import _reference

GOLDEN = Path(__file__).parent / "data" / "entries_02ed9fd.json"
T = 1796000000000005000


class SaltStream:
    """Deterministic salts (the same bytes for the same draws), for comparing encoders."""

    def __init__(self, seed: int = 0) -> None:
        self.i = seed

    def __call__(self, n: int) -> bytes:
        out = b"".join(hashlib.sha256(f"salt{self.i + k}".encode()).digest()[:1] for k in range(n))
        self.i += n
        return out


def golden_steps() -> list[Step]:
    step = Step(
        run_id="r" * 32, id="s" * 16, name="search", kind="tool", index=1,
        started_ns=1796000000000000000, ended_ns=1796000000000001000, agent="a", owner="o",
        input_hash="ab" * 32, output_hash="cd" * 32, model="gpt-4o", input_tokens=120,
        output_tokens=40, cost=0.00042,
        attributes={
            "temperature": 0.2, "k": 5, "big": 2**60, "flag": True, "f": 1.0, "tiny": 1.5e-6,
            "é": "ü", "nested": {"b": [1, 2.5], "a": None},
        },
    )  # fmt: skip
    err_step = Step(
        run_id="r" * 32, id="e" * 16, name="validate", kind="llm", index=2,
        started_ns=1796000000000002000, status="error",
        error=ErrorInfo(
            type="ValueError", message="bad claim for bob@example.com",
            traceback="Traceback...", origin_step_id="s" * 16,
        ),
        attributes={"user.email": "bob@example.com"},
    )  # fmt: skip
    return [step, err_step]


def golden_records() -> list[tuple[str, str, str | None, dict[str, Any]]]:
    step, err_step = golden_steps()
    run = Run(
        id="r" * 32, workflow="claims", started_ns=1796000000000000000, status="failed",
        ended_ns=1796000000000009000, owner="team", input_hash="ef" * 32,
        reason="validator rejected", failed_step_id="e" * 16,
        error=ErrorInfo(type="E", message="m"), declared_steps=7, attributes={"x": 1},
    )  # fmt: skip
    run_start = Run(id="q" * 32, workflow="claims", started_ns=1796000000000000000)
    edge = Edge(
        run_id="r" * 32,
        source="s" * 16,
        target="e" * 16,
        kind="data",
        evidence="content",
        detail="query",
    )
    finding = Finding(
        id="f1", run_id="r" * 32, detector="empty", severity="high", message="empty output",
        step_id="s" * 16, evidence={"len": 0, "expected": 3.5},
        created_ns=1796000000000003000, kind="empty",
    )  # fmt: skip
    finding0 = Finding(id="f0", run_id="r" * 32, detector="d", severity="low", message="m")
    return [
        ("step", step_record_id(step.run_id, step.id), step.run_id, step_data(step)),
        ("step", step_record_id(err_step.run_id, err_step.id), err_step.run_id,
         step_data(err_step)),
        ("run.end", run.id, run.id, run_data(run)),
        ("run.start", run_start.id, run_start.id, run_data(run_start)),
        ("edge", edge_id(edge), edge.run_id, edge_data(edge)),
        ("finding", finding.id, finding.run_id, finding_data(finding)),
        ("finding", finding0.id, finding0.run_id, finding_data(finding0)),
    ]  # fmt: skip


AUDIT: list[tuple[str, dict[str, Any]]] = [
    ("attribution", {
        "run_id": "r" * 32, "summary": "root cause: step 2", "confidence": 0.75,
        "evidence": {"k": "v"}, "user.email": "x@y.z", "steps": [1, 2],
    }),
    ("incident.transition", {
        "id": "inc1", "from": "triggered", "to": "acknowledged", "note": "on it",
        "at_ns": 1796000000000000000,
    }),
]  # fmt: skip

CONFIGS = (LedgerConfig(), LedgerConfig(commit_all_attributes=False))


def test_entries_are_the_bytes_written_before_the_fast_path() -> None:
    golden = orjson.loads(GOLDEN.read_bytes())
    got_generic: list[list[str]] = []
    got_fast: list[list[str]] = []
    for config in CONFIGS:
        generic, fast = Encoder(config, salts=SaltStream()), Encoder(config, salts=SaltStream())
        for kind, rid, run_id, data in golden_records():
            e = generic.encode(kind, rid, run_id, data, T)
            got_generic.append([e.entry.decode(), (e.openings or b"").decode()])
        for kind, rid, run_id, data in golden_records():
            e = fast.encode_known(kind, rid, run_id, data, T)
            got_fast.append([e.entry.decode(), (e.openings or b"").decode()])
        for kind, data in AUDIT:
            rid = str(data.get("id") or data.get("run_id"))
            e = generic.encode(kind, rid, None, dict(data), T, top_level_keys=True)
            got_generic.append([e.entry.decode(), (e.openings or b"").decode()])
            e = fast.encode(kind, rid, None, dict(data), T, top_level_keys=True)
            got_fast.append([e.entry.decode(), (e.openings or b"").decode()])
    assert got_generic == golden
    assert got_fast == golden


# -- many records of every kind: the fast path against the generic path ----------------------

_keys = st.text(max_size=8) | st.sampled_from(
    ["user.email", "password", "k", "flightlog.sensitive", "\U0001f600", "é", "$commit"]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=1e-8, max_value=1e-3)
    | st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e21, 2.5e-6, 5e-324, 0.2, 0.00042])
    | st.text(max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(_keys, c, max_size=3),
    max_leaves=8,
)
_maps = st.dictionaries(_keys, _values, max_size=5) | st.dictionaries(
    st.text(alphabet="abcxyz._", max_size=6), _scalars, max_size=5
)
_ids = st.text(min_size=1, max_size=16)
_opt = st.none() | st.text(max_size=10)
_ns = st.integers(0, 2**63 - 1)
_errors = st.none() | st.builds(
    ErrorInfo, type=st.text(max_size=8), message=st.text(max_size=20), traceback=_opt,
    origin_step_id=_opt,
)  # fmt: skip
_hashes = st.none() | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)

steps = st.builds(
    Step, run_id=_ids, id=_ids, name=st.text(max_size=10), kind=st.sampled_from(["llm", "tool"]),
    index=st.integers(1, 100), started_ns=_ns, ended_ns=st.none() | _ns, parent_id=_opt,
    agent=_opt, owner=_opt, status=st.sampled_from(["ok", "error"]), input_hash=_hashes,
    output_hash=_hashes, error=_errors, model=_opt, provider=_opt,
    input_tokens=st.none() | st.integers(0, 2**60), output_tokens=st.none() | st.integers(0, 9),
    cost=st.none() | st.floats(allow_nan=True, allow_infinity=True), attributes=_maps,
)  # fmt: skip
runs = st.builds(
    Run, id=_ids, workflow=st.text(max_size=10), started_ns=_ns,
    status=st.sampled_from(["running", "failed", "succeeded"]), ended_ns=st.none() | _ns,
    version=_opt, owner=_opt, service=_opt, input_hash=_hashes, output_hash=_hashes,
    reason=_opt, failed_step_id=_opt, error=_errors,
    declared_steps=st.none() | st.integers(-(2**60), 2**60), attributes=_maps,
)  # fmt: skip
edges = st.builds(
    Edge, run_id=_ids, source=_ids, target=_ids, kind=st.sampled_from(["data", "parent"]),
    evidence=st.sampled_from(["declared", "content", "x"]), detail=_opt,
)  # fmt: skip
findings = st.builds(
    Finding, id=_ids, run_id=_ids, detector=st.text(max_size=8), severity=st.text(max_size=5),
    message=st.text(max_size=20), step_id=_opt, evidence=_maps, created_ns=_ns,
    kind=_opt,
)  # fmt: skip


def _record(rec: Any) -> tuple[str, str, str | None, dict[str, Any]]:
    if isinstance(rec, Step):
        return "step", step_record_id(rec.run_id, rec.id), rec.run_id, step_data(rec)
    if isinstance(rec, Run):
        kind = "run.start" if rec.status == "running" else "run.end"
        return kind, rec.id, rec.id, run_data(rec)
    if isinstance(rec, Edge):
        return "edge", edge_id(rec), rec.run_id, edge_data(rec)
    return "finding", rec.id, rec.run_id, finding_data(rec)


_configs = st.sampled_from(
    [
        LedgerConfig(),
        LedgerConfig(commit_all_attributes=False),
        LedgerConfig(committed_fields=()),
        LedgerConfig(committed_fields=("message", "attributes.k", "error.type", "workflow")),
        LedgerConfig(committed_fields=("output_hash", "error.message", "input_hash", "detail")),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(steps | runs | edges | findings, min_size=1, max_size=6), _configs)
def test_fast_path_writes_the_generic_bytes(records: list[Any], config: LedgerConfig) -> None:
    generic, fast = Encoder(config, salts=SaltStream()), Encoder(config, salts=SaltStream())
    for rec in records:
        kind, rid, run_id, _data = _record(rec)
        a = generic.encode(kind, rid, run_id, _record(rec)[3], T)
        b = fast.encode_known(kind, rid, run_id, _record(rec)[3], T)
        assert b.entry == a.entry
        assert b.openings == a.openings
        assert (b.kind, b.record_id, b.run_id, b.time_ns) == (a.kind, a.record_id, a.run_id, T)


def test_fast_path_leaves_the_callers_maps_alone() -> None:
    attrs = {"k": 1.0, "user.email": "a@b.c"}
    step = Step(run_id="r", id="s", name="n", kind="tool", index=1, started_ns=1,
                attributes=attrs, input_hash="ab" * 32)  # fmt: skip
    Encoder(LedgerConfig()).encode_known("step", "r/s", "r", step_data(step), T)
    assert step.attributes == {"k": 1.0, "user.email": "a@b.c"}
    assert step.input_hash == "ab" * 32


# -- the canonical form of flat maps and floats --------------------------------------------


@settings(max_examples=500, deadline=None)
@given(_maps)
def test_dumps_map_is_rfc8785(value: dict[str, Any]) -> None:
    assert canonical.dumps_map(value) == _reference(value) == canonical.dumps(value)


def test_floats_kept_for_orjson_are_written_as_ecmascript_does() -> None:
    assert canonical._ORJSON_ES  # the orjson installed writes them so (else: all formatted)
    rng = random.Random(13)
    for _ in range(100_000):
        x = rng.random() * 10 ** rng.uniform(-320, 300) * rng.choice((1, -1))
        assert canonical.dumps(x) == rfc8785.dumps(x)
        assert canonical.dumps_map({"x": x}) == b'{"x":' + rfc8785.dumps(x) + b"}"


# -- the write hook's batch path for steps -------------------------------------------------


def _step_entries(enc: Encoder, batch: list[Step]) -> list[tuple[Any, ...]]:
    return [
        (e.kind, e.record_id, e.run_id, e.time_ns, e.entry, e.openings)
        for e in enc.encode_steps(batch, T)
    ]


def _known_entries(enc: Encoder, batch: list[Step]) -> list[tuple[Any, ...]]:
    out = []
    for s in batch:
        e = enc.encode_known("step", step_record_id(s.run_id, s.id), s.run_id, step_data(s), T)
        out.append((e.kind, e.record_id, e.run_id, e.time_ns, e.entry, e.openings))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, min_size=0, max_size=8), _configs)
def test_step_batches_are_the_bytes_of_one_record_at_a_time(
    batch: list[Step], config: LedgerConfig
) -> None:
    """``encode_steps`` (salts of a batch drawn at once, steps with an error in between)
    writes the entries and openings ``encode_known`` writes step by step, from the same salt
    stream; the steps are left as they were."""
    before = [(s.attributes.copy(), s.input_hash, s.output_hash) for s in batch]
    got = _step_entries(Encoder(config, salts=SaltStream()), batch)
    assert [(s.attributes, s.input_hash, s.output_hash) for s in batch] == before
    assert got == _known_entries(Encoder(config, salts=SaltStream()), batch)


def test_step_batches_cover_the_golden_steps_and_every_kind_of_attribute() -> None:
    golden = orjson.loads(GOLDEN.read_bytes())
    per_config = len(golden_records()) + len(AUDIT)
    for n, config in enumerate(CONFIGS):
        enc = Encoder(config, salts=SaltStream())
        got = [[e.entry.decode(), (e.openings or b"").decode()] for e in enc.encode_steps(
            golden_steps(), T)]  # fmt: skip
        assert got == golden[n * per_config : n * per_config + 2]
    step = golden_steps()[0]
    maps = [
        {},
        {"big": 2**60, "nan": float("nan"), "inf": float("inf")},
        {1: "int key", "k": (1, 2), "s": {"x"}},
        {"é": 1.0, "\U0001f600": "emoji key", "z": -0.0, "t": 1.5e-5},
        {"flag": True, "none": None, "f": 0.1, "n": -(2**53) + 1, "x": 2**53 - 1},
        {"t": 1.5e-6, "u": 2.5e-7, "v": 1e-7, "w": 9.99e-5},
        {"one": 1.0, "e": 1e16},
        {"b": 2**53, "s": "x", "a": 0.2},
        {"\uff01": 1, "\U0001f600": 2},  # UTF-16 order differs from code point order
        {"nan": float("nan"), "inf": float("-inf"), "x": 0.5},
    ]
    batch = [dataclasses.replace(step, attributes=m) for m in maps]
    batch.append(dataclasses.replace(step, input_hash=None, output_hash=None, attributes={}))
    for config in CONFIGS:
        fast = _step_entries(Encoder(config, salts=SaltStream()), batch)
        assert fast == _known_entries(Encoder(config, salts=SaltStream()), batch)


def test_step_entries_own_no_more_memory_than_they_hold() -> None:
    """orjson hands back its whole output buffer (about 8 KB); entries kept for a batch
    (or longer) are compact copies."""
    step = golden_steps()[0]
    enc = Encoder(LedgerConfig())
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        kept = enc.encode_steps([step] * 200, T)
        kept += [enc.encode_known("step", "r/s", "r", step_data(step), T) for _ in range(200)]
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    held = sum(sys.getsizeof(e.entry) + sys.getsizeof(e.openings) for e in kept)
    assert used < 2 * held, (used, held)  # with orjson's buffers: over 8 KB per entry
