"""The detectors' fast paths answer as the plain code they replace (same findings)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.detect.test_baselines import _record, outputs

from flightlog.detect import builtin, features
from flightlog.detect.context import History, RunContext
from flightlog.detect.registry import budgets_for
from flightlog.model import Finding, Run

wide = st.one_of(
    outputs,
    st.dictionaries(
        st.sampled_from(["a", "status", "n", "when"]),
        st.one_of(
            st.integers(-1000, 10**7),
            st.sampled_from(["x", "yes", "no", "a" * 70, "2020-01-01T00:00:00Z"]),
            st.lists(st.integers(0, 3), max_size=30),
            st.booleans(),
            st.none(),
        ),
        max_size=4,
    ),
)


def _plain_value_anomaly(run: RunContext) -> Iterator[Finding]:
    """``builtin.value_anomaly`` before its per-type dispatch: every check on every path."""
    for step, _value, _base in builtin._outputs(run):
        stats = run.stats(step)
        if stats.present < builtin.MIN_VALUE_SAMPLES:
            continue
        passed_in = None
        for path, v in run.field_map(step).items():
            hist = stats.path(path)
            if hist.count < builtin.MIN_VALUE_SAMPLES:
                continue
            f = builtin._numeric(run, step, path, v, hist)
            f = f or builtin._categorical(run, step, path, v, hist)
            f = f or builtin._length(run, step, path, v, hist)
            if f is None:
                continue
            if passed_in is None:
                passed_in = builtin._input_leaves(run.input(step))
            if builtin._passed_through(v, passed_in):
                continue
            yield f


def _context(runs: list[list[Any]], last: list[Any]) -> RunContext:
    history = History(workflow="w")
    values: dict[str, Any] = {}
    for i, outs in enumerate(runs):
        rec, vals = _record(i, outs)
        values.update(vals)
        history = history.advanced(rec, values.__getitem__)
    rec, vals = _record(len(runs), last)
    payloads = {h: orjson.dumps(v) for h, v in vals.items()}
    return RunContext(None, rec, history, payloads=payloads)  # type: ignore[arg-type]


def _key(f: Finding) -> tuple[Any, ...]:
    return (f.id, f.message, orjson.dumps(f.evidence, option=orjson.OPT_SORT_KEYS))


def _usual(i: int) -> dict[str, Any]:
    return {
        "n": 100 + i % 3,
        "status": "ok" if i % 2 else "fine",
        "text": "a" * (70 + i % 4),
        "items": [1] * (10 + i % 2),
        "flag": True,
        "meta": {"k": 1},
        "none": None,
    }


ODD = {"n": 10**7, "status": "weird", "text": "abc", "items": [1], "flag": False, "none": "x"}


@settings(max_examples=40, deadline=None)
@given(st.sets(st.sampled_from(sorted(ODD))), st.integers(12, 30))
def test_value_anomaly_dispatch_finds_what_every_check_finds(odd: set[str], n: int) -> None:
    last = {**_usual(n), **{k: ODD[k] for k in odd}}
    runs = [[_usual(i), {"x": i}] for i in range(n)]
    fast = [_key(f) for f in builtin.value_anomaly(_context(runs, [last, {"x": 1}]))]
    plain = [_key(f) for f in _plain_value_anomaly(_context(runs, [last, {"x": 1}]))]
    assert fast == plain
    if odd - {"none"}:
        assert plain  # the anomalies are found (the comparison means something)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(wide, min_size=2, max_size=2), min_size=5, max_size=14),
    st.lists(wide, min_size=2, max_size=2),
)
def test_value_anomaly_dispatch_answers_as_every_check(
    runs: list[list[Any]], last: list[Any]
) -> None:
    fast = [_key(f) for f in builtin.value_anomaly(_context(runs, last))]
    plain = [_key(f) for f in _plain_value_anomaly(_context(runs, last))]
    assert fast == plain


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=3),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=2), c, max_size=3),
    )
)
def test_strings_and_json_type_answer_as_before(value: Any) -> None:
    def plain_strings(v: Any, limit: int = 200) -> Iterator[str]:
        stack, seen = [v], 0
        while stack and seen < limit:
            x = stack.pop()
            if isinstance(x, str):
                seen += 1
                yield x
            elif isinstance(x, dict):
                for k, y in x.items():
                    if isinstance(k, str):
                        stack.append(k)
                    stack.append(y)
            elif isinstance(x, list):
                stack.extend(x)

    for limit in (1, 3, 200):
        assert features.strings(value, limit) == list(plain_strings(value, limit))
    plain_type = (
        "null"
        if value is None
        else "boolean"
        if isinstance(value, bool)
        else "number"
        if isinstance(value, int)
        else "string"
        if isinstance(value, str)
        else "array"
        if isinstance(value, list)
        else "object"
    )
    assert features.json_type(value) == plain_type


def test_budgets_without_a_budgets_section_come_from_the_run() -> None:
    run = Run(
        id="r",
        workflow="w",
        started_ns=0,
        attributes={"budget.tokens": 10, "budget": {"cost": 2.5}},
    )
    assert budgets_for(run, {}) == {"tokens": 10.0, "cost": 2.5}
    assert budgets_for(run, {"budgets": {"steps": 3, "w": {"tokens": 99}}}) == {
        "steps": 3.0,
        "tokens": 10.0,
        "cost": 2.5,
    }


def test_finish_reasons_in_attributes_and_outputs() -> None:
    from flightlog.model import Step

    step = Step(
        run_id="r",
        id="s",
        name="n",
        kind="llm",
        index=1,
        started_ns=0,
        attributes={"gen_ai.response.finish_reasons": ["length"], "other": 1},
    )
    assert builtin._finish_reasons(step, {"finish_reason": "stop"}) == ["length", "stop"]
    assert builtin._finish_reasons(step, "text") == ["length"]
    plain = Step(run_id="r", id="t", name="n", kind="llm", index=1, started_ns=0)
    assert builtin._finish_reasons(plain, {"choices": [{"finish_reason": "max_tokens"}]}) == [
        "max_tokens"
    ]


_keys = st.sampled_from(["a", "b", "$x", "a.b", "[]", "c[]"]) | st.text(max_size=2)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=3),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(_keys, c, max_size=4),
        max_leaves=20,
    )
)
def test_field_map_is_the_fields_generator_as_a_dict(value: Any) -> None:
    # Built by assignment, not through the generators: the same paths, values and order
    # (keys that look like paths, "$" keys, records in lists, three levels deep).
    got = features.field_map(value)
    want = dict(features.fields(value))
    assert list(got.items()) == list(want.items())
    assert all(got[k] is want[k] for k in want)
