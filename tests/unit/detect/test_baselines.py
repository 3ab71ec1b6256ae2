"""Baselines are incremental statistics: folding runs into a history one at a time gives the
very statistics (and findings) that computing them from scratch over the same samples gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightlog import pipeline
from flightlog.detect import RunContext, run_detectors
from flightlog.detect.context import (
    HISTORY_RUNS,
    Baseline,
    History,
    HistoryCache,
    PathStats,
    _add_record,
    history_cache,
    load_history,
)
from flightlog.model import Batch, Run, RunRecord, Step
from flightlog.payload import payload_of
from flightlog.store import open_store

T0 = 1_700_000_000_000_000_000

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([0.5, 1.25, 3.0]),
    st.sampled_from(["", "a", "ok", "fine", "2024-01-01T00:00:00Z", "error: x"]),
)
outputs = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(
        st.sampled_from(["a", "b", "status", "items", "n"]),
        st.one_of(
            scalars,
            st.lists(scalars, max_size=2),
            st.dictionaries(st.sampled_from(["x", "y"]), scalars, max_size=2),
        ),
        max_size=4,
    ),
)


def _record(i: int, outs: list[Any]) -> tuple[RunRecord, dict[str, Any]]:
    """A successful run ``i`` whose steps output ``outs`` (a ``None`` output: not recorded)."""
    rid = f"{i:032x}"
    values: dict[str, Any] = {}
    steps = []
    for k, out in enumerate(outs):
        h_out = h_in = None
        if out is not None:
            h_out = f"out-{i}-{k}"
            values[h_out] = out
        h_in = f"in-{i}-{k}"
        values[h_in] = {"q": "ok" if k % 2 else "fine", "n": k}
        steps.append(
            Step(
                run_id=rid,
                id=f"{i:012x}{k:04x}",
                name="lookup" if k % 2 else "plan",
                kind="tool",
                index=k + 1,
                started_ns=T0 + i * 10**9 + k,
                ended_ns=T0 + i * 10**9 + k + 1000 * (i % 7 + 1),
                input_hash=h_in,
                output_hash=h_out,
            )
        )
    run = Run(id=rid, workflow="w", started_ns=T0 + i * 10**9, status="succeeded")
    return RunRecord(run, steps, [], []), values


def _path_stats(p: PathStats) -> tuple[Any, ...]:
    return (
        p.count,
        p.numbers,
        dict(p.strings),
        dict(p.booleans),
        p.lengths,
        p.n_dicts,
        dict(p.keys),
        {k: dict(v) for k, v in p.key_types.items()},
        p.seen,
        p.grounded,
        p.dict_profile(),
    )


def _same(a: Baseline, b: Baseline, paths: set[str]) -> None:
    assert (a.present, dict(a.types), a.durations) == (b.present, dict(b.types), b.durations)
    for path in paths:
        assert _path_stats(a.path(path)) == _path_stats(b.path(path)), path


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(outputs, min_size=1, max_size=4), min_size=1, max_size=HISTORY_RUNS + 12))
def test_folding_runs_in_equals_computing_from_scratch(runs: list[list[Any]]) -> None:
    history = History(workflow="w")
    records = []
    values: dict[str, Any] = {}
    paths: set[str] = {"$", "a", "b", "status", "items", "n", "a.x", "b.y", "[]", "[].a"}
    keys: set[tuple[Any, ...]] = set()
    for i, outs in enumerate(runs):
        rec, vals = _record(i, outs)
        records.append(rec)
        values.update(vals)
        # Ask for every baseline and path before folding, so each is carried forward.
        keys |= {("name", n) for n in history.samples} | set(history.by_signature)
        for key in keys:
            b = history.baseline(key)
            for path in paths:
                b.path(path)
        history = history.advanced(rec, values.__getitem__)
    assert history.runs == min(len(runs), HISTORY_RUNS)
    # The same samples, in the same order, as a history built from the most recent runs.
    scratch = History(workflow="w")
    for rec in reversed(records[-HISTORY_RUNS:]):
        _add_record(scratch, rec, values.__getitem__)

    def ids(lists: dict[Any, list[Any]]) -> dict[Any, list[tuple[str, Any]]]:
        return {k: [(x.run_id, x.duration_ns) for x in v] for k, v in lists.items()}

    assert history.run_ids == scratch.run_ids
    assert ids(history.samples) == ids(scratch.samples)
    assert ids(history.by_signature) == ids(scratch.by_signature)
    for key in keys:
        fresh = Baseline(history.of_key(key))
        _same(history.baseline(key), fresh, paths)


def _write_run(store: Any, i: int, amount: float, status: str = "succeeded") -> str:
    rid = f"{i:032x}"
    b = Batch()
    out = payload_of({"amount": amount, "currency": "EUR", "items": ["a"] * (1 + i % 3)})
    inp = payload_of({"q": f"claim {i}"})
    b.payloads += [out, inp]
    b.steps.append(
        Step(
            run_id=rid,
            id=f"{i:012x}0001",
            name="price",
            kind="tool",
            index=1,
            started_ns=T0 + i * 10**9,
            ended_ns=T0 + i * 10**9 + 10**6 * (10 + i % 5),
            input_hash=inp.hash,
            output_hash=out.hash,
        )
    )
    b.runs.append(
        Run(
            id=rid,
            workflow="claims",
            started_ns=T0 + i * 10**9,
            ended_ns=T0 + i * 10**9 + 10**8,
            status=status,
            source="sdk",
        )
    )
    store.write(b)
    return rid


@pytest.fixture
def ledgerless_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh SQLite store without the audit ledger, run ends done in ``tmp_path``."""
    monkeypatch.setenv("FLIGHTLOG_LEDGER", "off")
    monkeypatch.chdir(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        yield store
    finally:
        store.close()


def test_pipeline_history_finds_what_a_fresh_history_finds(ledgerless_store: Any) -> None:
    """Runs ended one by one through the pipeline (baselines folded forward) and then an
    anomalous run: its findings equal those from a history read afresh from the store."""
    store = ledgerless_store
    for i in range(HISTORY_RUNS + 25):  # past the window: the oldest runs leave it
        pipeline.runs_ended(store, [_write_run(store, i, 100.0 + i % 9)])
    cached = history_cache.get(store, "claims")
    odd = _write_run(store, 10_000, 1e7, status="failed")
    folded = run_detectors(RunContext.load(store, odd))
    assert any(f.detector == "value_anomaly" for f in folded)
    fresh_history = load_history(store, "claims")
    assert fresh_history.run_ids == cached.run_ids
    fresh = run_detectors(RunContext(store, store.get_record(odd), fresh_history))
    assert [(f.id, f.message, f.evidence) for f in folded] == [
        (f.id, f.message, f.evidence) for f in fresh
    ]


def test_history_cache_is_bounded_and_owned_by_the_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        cache = HistoryCache(max_workflows=3)
        for w in ("a", "b", "c", "d"):
            cache.get(store, w)
        assert len(cache) == 3
        history_cache.get(store, "a")
        assert history_cache.of(store) is history_cache.of(store)
    finally:
        store.close()
    other = open_store(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        assert history_cache.of(other) is not None
        assert len(history_cache.of(other)) == 0
    finally:
        other.close()


def _write_agent_run(store: Any, i: int, status: str = "succeeded") -> str:
    """Run ``i`` of an agent whose steps change over time: the tool it calls (a new one every
    5 runs), the agent, the model, an output field, and one field and, for a failed run,
    one step no other run has."""
    rid = f"{i:032x}"
    b = Batch()
    names = ["plan", f"tool-{i // 5}", f"oops-{i}" if status == "failed" else "answer"]
    for k, name in enumerate(names):
        out = payload_of({"n": i % 7, f"field-{i // 5}": "x", "ok": True, f"err-{i}": status})
        inp = payload_of({"q": f"task {i}"})
        b.payloads += [out, inp]
        b.steps.append(
            Step(
                run_id=rid,
                id=f"{i:012x}{k:04x}",
                name=name,
                kind="tool" if k == 1 else "llm",
                agent=f"agent-{i // 10}",
                model=None if k == 1 else f"model-{i // 15}",
                index=k + 1,
                started_ns=T0 + i * 10**9 + k,
                ended_ns=T0 + i * 10**9 + k + 10**6 * (5 + i % 4),
                input_hash=inp.hash,
                output_hash=out.hash,
            )
        )
    b.runs.append(
        Run(
            id=rid,
            workflow="agent",
            started_ns=T0 + i * 10**9,
            ended_ns=T0 + i * 10**9 + 10**8,
            status=status,
            source="sdk",
        )
    )
    store.write(b)
    return rid


def test_history_keeps_no_state_for_signatures_that_left_the_window(
    ledgerless_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs ended one by one through the pipeline (the history folded forward, never read
    again) while their step names, agents, output fields and models change: once the window
    has moved past the old ones, the cached history holds no key, sample list, baseline or
    path statistics for them; it has the keys a history read afresh has, and a failed run's
    report lists the same steps not reached."""
    from flightlog.detect import context
    from flightlog.forensics.report import steps_not_reached

    loads: list[str] = []
    real_load = context.load_history

    def counting_load(store: Any, workflow: str, limit: int = HISTORY_RUNS) -> History:
        loads.append(workflow)
        return real_load(store, workflow, limit)

    monkeypatch.setattr(context, "load_history", counting_load)
    store = ledgerless_store
    for i in range(3 * HISTORY_RUNS):
        status = "failed" if i % 7 == 3 else "succeeded"
        pipeline.runs_ended(store, [_write_agent_run(store, i, status)])
    assert len(loads) <= 3  # folded forward, not read again (else the test proves nothing)
    cached = history_cache.get(store, "agent")
    fresh = real_load(store, "agent")
    assert cached.run_ids == fresh.run_ids
    assert set(cached.samples) == set(fresh.samples)
    assert set(cached.by_signature) == set(fresh.by_signature)
    assert all(cached.samples.values()) and all(cached.by_signature.values())
    assert cached.baselines, "the detectors asked for no baseline"
    for key, b in cached.baselines.items():
        assert b.samples and b.samples is cached.of_key(key), key
        assert all(st.count for st in b.paths.values()), (key, list(b.paths))
    assert {"n", "ok"} <= set(cached.baselines[("name", "plan")].paths)
    # Only the last window's step names, tools, agents and models are left.
    oldest = int(cached.run_ids[-1], 16)
    assert oldest > HISTORY_RUNS
    words = {
        str(w)
        for key in [*cached.samples, *cached.by_signature, *cached.baselines]
        for w in (key if isinstance(key, tuple) else (key,))
    }
    words |= {p for b in cached.baselines.values() for p in b.paths}
    stale = {f"tool-{k}" for k in range(oldest // 5)} | {f"agent-{k}" for k in range(oldest // 10)}
    stale |= {f"oops-{k}" for k in range(3 * HISTORY_RUNS)}
    stale |= {f"err-{k}" for k in range(oldest)} | {f"field-{k}" for k in range(oldest // 5)}
    assert not words & stale
    odd = _write_agent_run(store, 10_000, status="failed")
    not_reached = steps_not_reached(store, store.get_record(odd))
    assert not_reached == [n for n in fresh.samples if n not in {"plan", "tool-2000"}]
