"""The fast canonical form is byte-identical to RFC 8785 (the ``rfc8785`` package)."""

from __future__ import annotations

import math
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from flightlog.ledger import canonical
from flightlog.ledger.config import LedgerConfig
from flightlog.ledger.entry import Encoder, run_data, step_data
from flightlog.model import ErrorInfo, Run, Step


def _reference(value: Any) -> bytes:
    """What rfc8785 produces once integers beyond 2**53 are strings and NaN and infinities
    null (our documented rules)."""

    def fix(v: Any) -> Any:
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, int):
            return v if abs(v) <= canonical.MAX_SAFE_INT else str(v)
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return rfc8785.dumps(fix(value))


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_matches_rfc8785_on_arbitrary_json(value: Any) -> None:
    assert canonical.dumps(value) == _reference(value)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_use_ecmascript_form(x: float) -> None:
    assert canonical.dumps(x) == rfc8785.dumps(x)


def test_astral_keys_sort_by_utf16_code_units() -> None:
    value = {"\U0001f600": 1, "\uffff": 2, "a": 3}
    assert canonical.dumps(value) == rfc8785.dumps(value)


def test_nanosecond_integers_become_strings_and_nan_becomes_null() -> None:
    assert canonical.dumps({"t": 1_795_654_746_403_212_042}) == b'{"t":"1795654746403212042"}'
    assert canonical.dumps([math.nan, math.inf]) == b"[null,null]"


step_strategy = st.builds(
    Step,
    run_id=st.text(min_size=1, max_size=32),
    id=st.text(min_size=1, max_size=16),
    name=st.text(),
    kind=st.sampled_from(["llm", "tool", "agent"]),
    index=st.integers(1, 10_000),
    started_ns=st.integers(0, 2**63 - 1),
    ended_ns=st.none() | st.integers(0, 2**63 - 1),
    agent=st.none() | st.text(),
    input_hash=st.none() | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    error=st.none() | st.builds(ErrorInfo, type=st.text(), message=st.text()),
    input_tokens=st.none() | st.integers(0, 2**40),
    cost=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    # the store keeps attributes as orjson JSON, which holds integers up to 64 bits
    attributes=st.dictionaries(
        st.text(), scalars.filter(lambda v: not isinstance(v, int) or abs(v) < 2**63), max_size=4
    ),
)


@settings(max_examples=200, deadline=None)
@given(step_strategy)
def test_step_entries_are_rfc8785(step: Step) -> None:
    enc = Encoder(
        LedgerConfig(sensitive_patterns=(), committed_fields=(), commit_all_attributes=False)
    )
    e = enc.encode("step", f"{step.run_id}/{step.id}", step.run_id, step_data(step), 1)
    data = step.to_dict()
    del data["index"]  # derived state, not logged
    for key in ("started_ns", "ended_ns"):
        data[key] = None if data[key] is None else str(data[key])
    expected = {"v": 1, "kind": "step", "id": f"{step.run_id}/{step.id}", "time": "1", "data": data}
    assert e.entry == _reference(expected)


def test_run_entry_commits_payload_hashes_and_sensitive_attributes() -> None:
    # Per-key commitments of sensitive attributes (the default commits the whole map).
    enc = Encoder(LedgerConfig(commit_all_attributes=False))
    run = Run(
        id="r" * 32,
        workflow="w",
        started_ns=1,
        input_hash="ab" * 32,
        attributes={"user.email": "a@b.c", "plain": 1, "flightlog.sensitive": ["plain"]},
    )
    e = enc.encode("run.start", run.id, run.id, run_data(run), 2)
    assert b"a@b.c" not in e.entry and b"ab" * 32 not in e.entry
    assert e.openings is not None and b"a@b.c" in e.openings
    assert b'"plain":{"$commit"' in e.entry


# Numbers that survive a JSON round trip as they were (integral floats of 2**53 and more read
# back as integers, which the canonical form writes as strings).
_round_trips = step_strategy.filter(lambda s: s.cost is None or abs(s.cost) < 2**53)


@settings(max_examples=200, deadline=None)
@given(_round_trips)
def test_step_entries_with_commitments_are_rfc8785_and_open_to_the_record(step: Step) -> None:
    """With the default configuration (payload hashes, error texts and the attributes
    committed): the entry is RFC 8785, each commitment is SHA-256 of its salt and the RFC 8785
    form of the value its opening holds, and the openings put back give the record."""
    import base64
    import hashlib

    import orjson

    e = Encoder(LedgerConfig()).encode(
        "step", f"{step.run_id}/{step.id}", step.run_id, step_data(step), 1
    )
    entry = orjson.loads(e.entry)
    assert e.entry == _reference(entry)
    data = entry["data"]
    for path, salt, value in orjson.loads(e.openings or b"[]"):
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        commit = parent[path[-1]]["$commit"]
        digest = hashlib.sha256(base64.b64decode(salt) + _reference(value)).digest()
        assert base64.b64decode(commit) == digest
        parent[path[-1]] = value
    expected = step.to_dict()
    del expected["index"]
    for key in ("started_ns", "ended_ns"):
        expected[key] = None if expected[key] is None else str(expected[key])
    assert _reference(data) == _reference(expected)
