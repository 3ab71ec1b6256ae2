"""Run-end work does not grow with the runs already stored.

The run-end pipeline folds each ended run into its workflow's cached baselines (the history of
successful runs, the spectrum of recent runs) instead of re-reading or re-counting them, so
the work per ended run is the same with 300 or with 3,000 runs stored. Work is measured as
the virtual-machine instructions SQLite executes for the run end (a progress handler on the
store's real connection): a count, not a timing.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from flightlog import pipeline
from flightlog.app import open_store
from flightlog.model import Batch, ErrorInfo, Run, Step
from flightlog.payload import payload_of

pytestmark = pytest.mark.slow

T0 = 1_700_000_000_000_000_000
# Instructions per progress-handler call: 1 counts them exactly. SQLite calls the handler
# every UNIT instructions of each prepared statement's running total, so a coarser unit
# rounds a run end's ~325 instructions to 200, 300 or 400 by the statements' history.
UNIT = 1


def _run(i: int, failed: bool) -> Batch:
    rid = f"{i:032x}"
    b = Batch()
    for k, name in enumerate(("search", "assess", "validate"), 1):
        out = payload_of({"docs": [f"doc {i} {j}" for j in range(3)]} if k == 1 else f"answer {i}")
        inp = payload_of({"q": f"question {i}"})
        b.payloads += [out, inp]
        err = failed and k == 3
        b.steps.append(
            Step(
                run_id=rid,
                id=f"{i:012x}{k:04x}",
                name=name,
                kind="tool",
                index=k,
                started_ns=T0 + i * 10**9 + k * 1000,
                ended_ns=T0 + i * 10**9 + k * 1000 + 500,
                status="error" if err else "ok",
                input_hash=inp.hash,
                output_hash=out.hash,
                error=ErrorInfo("ValueError", "rejected") if err else None,
            )
        )
    b.runs.append(
        Run(
            id=rid,
            workflow="claims",
            started_ns=T0 + i * 10**9,
            ended_ns=T0 + i * 10**9 + 5000,
            status="failed" if failed else "succeeded",
            source="sdk",
            failed_step_id=b.steps[-1].id if failed else None,
            reason="rejected" if failed else None,
        )
    )
    return b


def _fill(store: Any, start: int, stop: int) -> None:
    for chunk in range(start, stop, 500):
        batch = Batch()
        for i in range(chunk, min(chunk + 500, stop)):
            batch.extend(_run(i, failed=i % 10 == 0))
        store.write(batch)


def _median_run_end_work(
    store: Any, first: int, n: int = 24, python_work: list[Any] | None = None
) -> float:
    conn = store._connection()  # the SQLite store's one connection: reads and writes
    work: list[int] = []
    for i in range(first, first + n):
        if python_work is not None and i == first + 3:
            python_work.clear()  # the first ones rebuild baselines after the bulk fill
        store.write(_run(i, failed=i % 3 != 0))  # two failed runs for one success
        calls = [0]

        def count(calls: list[int] = calls) -> int:
            calls[0] += 1
            return 0

        conn.set_progress_handler(count, UNIT)
        try:
            pipeline.runs_ended(store, [f"{i:032x}"])
        finally:
            conn.set_progress_handler(None, 0)
        work.append(calls[0] * UNIT)
    return statistics.median(work[3:])  # the first ones rebuild baselines after the bulk fill


def test_run_end_work_does_not_grow_with_stored_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTLOG_LEDGER", "off")
    monkeypatch.delenv("FLIGHTLOG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        _fill(store, 0, 300)
        small = _median_run_end_work(store, 10**6)
        _fill(store, 300, 3000)
        large = _median_run_end_work(store, 2 * 10**6)
    finally:
        store.close()
    assert small > 0
    assert large < 1.5 * small, (small, large)


def test_baselines_are_updated_not_recomputed_per_run_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Python side of the same: once the workflow's history has been read after a bulk
    fill (the cache is dropped after each fill, so it is read at the first run end), no run
    end reads it again, and the samples the baselines visit per run end (folding the new run
    in, dropping the oldest) are as many with 3,000 runs stored as with 300."""
    from flightlog.detect import context

    monkeypatch.setenv("FLIGHTLOG_LEDGER", "off")
    monkeypatch.delenv("FLIGHTLOG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    loads: list[str] = []
    visits: list[int] = []
    load_history = context.load_history
    visit = context.NetChange.count_in

    def counting_load(store: Any, workflow: str, limit: int = context.HISTORY_RUNS) -> Any:
        loads.append(workflow)
        return load_history(store, workflow, limit)

    def counting_visit(self: Any, counted: Any, n: int) -> None:
        visits.append(1)  # a sample counted into or out of a path's statistics
        visit(self, counted, n)

    monkeypatch.setattr(context, "load_history", counting_load)
    monkeypatch.setattr(context.NetChange, "count_in", counting_visit)
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        _fill(store, 0, 300)
        context.history_cache.clear()
        _median_run_end_work(store, 10**6, python_work=loads)
        reads_small = len(loads)
        visits.clear()
        _median_run_end_work(store, 10**6 + 100, python_work=visits)
        small = len(visits)
        _fill(store, 300, 3000)
        context.history_cache.clear()
        _median_run_end_work(store, 2 * 10**6, python_work=loads)
        reads_large = len(loads)
        visits.clear()
        _median_run_end_work(store, 2 * 10**6 + 100, python_work=visits)
        large = len(visits)
    finally:
        store.close()
    assert reads_small == reads_large == 0
    assert small > 0
    assert large == small, (small, large)
    # Updated, not recomputed: fewer sample visits per run end (21 measured) than one pass
    # over the history's runs would make.
    assert small / 21 < context.HISTORY_RUNS, small
