"""Cases found in review: shared specs, set_output values, pass-through children, threads,
generators, caller-side caps, hooks and flush, drops that survive reconfiguration."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import flightlog
from flightlog import pipeline
from flightlog.model import Batch
from flightlog.payload import decode
from flightlog.sdk import state
from flightlog.sdk.writer import StepDone, Writer
from tests.unit.sdk.sinks import SlowSink


def _record(store, run_id):  # type: ignore[no-untyped-def]
    assert flightlog.flush()
    return store.get_record(run_id)


def test_set_output_with_a_list_is_an_output_not_lineage(store) -> None:  # type: ignore[no-untyped-def]
    with flightlog.run("wf") as run:
        with flightlog.step("retrieve", kind="retrieval") as s:
            s.set_output(["ab", "cd"])
        with flightlog.step("rank", kind="tool") as s:
            s.set_output(["doc one", "doc two"])
    rec = _record(store, run.id)
    assert [st.name for st in rec.steps] == ["retrieve", "rank"]
    out = store.get_payloads([rec.steps[1].output_hash])[rec.steps[1].output_hash]
    assert decode(out) == ["doc one", "doc two"]
    assert rec.edges == [] and flightlog.stats()["dropped"] == 0


def test_a_pass_through_child_does_not_feed_its_parent(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="guardrail")
    def guard(text: str) -> str:
        return text  # passes its input through unchanged

    @flightlog.step(kind="agent")
    def agent(text: str) -> str:
        return guard(text) + " handled"

    with flightlog.run("wf") as run:
        agent("a long enough request to be matched by content")
    rec = _record(store, run.id)
    by_id = {s.id: s.name for s in rec.steps}
    assert [(by_id[e.source], by_id[e.target]) for e in rec.edges] == []


def test_concurrent_steps_do_not_feed_each_other(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="tool")
    async def echo(q: str) -> str:
        return q

    @flightlog.step(kind="tool")
    async def slow(q: str) -> str:
        await asyncio.sleep(0.02)
        return "done"

    async def main() -> str:
        async with flightlog.run("wf") as run:
            q = "the same question asked twice"
            await asyncio.gather(echo(q), slow(q))
        return run.id

    rec = _record(store, asyncio.run(main()))
    assert rec.edges == []


def test_one_spec_entered_by_two_tasks_records_both(store) -> None:  # type: ignore[no-untyped-def]
    lookup = flightlog.step("lookup", kind="tool")

    @flightlog.step(kind="function")
    def after() -> int:
        return 1

    async def worker(n: int) -> None:
        async with lookup as s:
            await asyncio.sleep(0.01 * (2 - n))
            s.set_output({"n": n})
        after()

    async def main() -> str:
        async with flightlog.run("wf") as run:
            await asyncio.gather(worker(0), worker(1))
        return run.id

    rec = _record(store, asyncio.run(main()))
    lookups = [s for s in rec.steps if s.name == "lookup"]
    afters = [s for s in rec.steps if s.name == "after"]
    assert len(lookups) == 2 and len(afters) == 2
    assert all(s.status == "ok" and s.ended_ns for s in lookups)
    assert all(a.parent_id is None for a in afters)  # not under a finished lookup


def test_one_spec_decorating_two_functions_keeps_their_names(store) -> None:  # type: ignore[no-untyped-def]
    tool = flightlog.step(kind="tool", agent="t")

    @tool
    def search() -> int:
        return 1

    @tool
    def rank() -> int:
        return 2

    with flightlog.run("wf") as run:
        search()
        rank()
    rec = _record(store, run.id)
    assert [s.name for s in rec.steps] == ["search", "rank"]


def test_wrap_carries_the_run_into_pool_threads(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="tool")
    def fetch(url: str) -> str:
        return f"content of {url} " * 3

    @flightlog.step(kind="agent")
    def crawl(urls: list[str]) -> list[str]:
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(flightlog.wrap(fetch), urls))

    with flightlog.run("crawl") as run:
        crawl(["a", "b", "c"])
    rec = _record(store, run.id)
    assert len(store.list_runs()) == 1  # no implicit runs
    crawl_step = next(s for s in rec.steps if s.name == "crawl")
    fetches = [s for s in rec.steps if s.name == "fetch"]
    assert len(fetches) == 3 and all(f.parent_id == crawl_step.id for f in fetches)
    assert sorted(s.index for s in rec.steps) == [1, 2, 3, 4]


def test_a_run_abandoned_inside_a_generator_is_unknown(store) -> None:  # type: ignore[no-untyped-def]
    ids: list[str] = []

    def producer():  # type: ignore[no-untyped-def]
        with flightlog.run("producer") as run:
            ids.append(run.id)
            yield 1
            yield 2

    gen = producer()
    next(gen)
    gen.close()
    rec = _record(store, ids[0])
    assert rec.run.status == "unknown" and "abandoned" in (rec.run.reason or "")


def test_oversized_values_are_capped_before_they_are_queued(recorder) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()

    class GatedSink(SlowSink):
        def write(self, batch: Batch) -> None:
            gate.wait(10)

    old = state._writer
    w = Writer(GatedSink(0.0))
    state._writer = w
    try:

        @flightlog.step(kind="tool")
        def big(blob: str) -> str:
            return blob

        with flightlog.run("wf"):
            big("x" * 5_000_000)
        queued = [i for i in list(w.queue.items) if isinstance(i, StepDone)]
        assert queued, "the step should still be queued behind the gated sink"
        for item in queued:
            assert len(item.input_json or b"") <= state.payload_cap
            assert len(item.output_json or b"") <= state.payload_cap
    finally:
        gate.set()
        w.close()
        state._writer = old


def test_flush_waits_for_run_end_hooks(store) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def slow_hook(st, run_ids) -> None:  # type: ignore[no-untyped-def]
        threading.Event().wait(0.2)
        seen.extend(run_ids)

    pipeline.register(slow_hook)
    try:
        with flightlog.run("wf") as run:
            pass
        assert flightlog.flush()
        assert run.id in seen
    finally:
        pipeline.unregister(slow_hook)


def test_drops_survive_reconfiguration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    flightlog.configure(f"sqlite:///{tmp_path / 'a.db'}")
    w = state.writer()
    assert w is not None
    w.dropped += 7  # as if the queue had overflowed
    flightlog.configure(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        assert flightlog.stats()["dropped"] >= 7
    finally:
        flightlog.shutdown()
        state._retired_dropped = 0


@pytest.mark.slow
def test_records_lost_at_exit_are_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "held.db"
    code = textwrap.dedent(f"""
        import sqlite3, flightlog
        flightlog.configure("sqlite:///{db}")
        blocker = sqlite3.connect("{db}", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # held until the process ends
        with flightlog.run("never-durable"):
            pass
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "FLIGHTLOG_EXIT_TIMEOUT": "2",
            "FLIGHTLOG_SQLITE_BUSY_TIMEOUT_MS": "100",
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert "could not make 2 record(s) durable before exit" in proc.stderr


def test_flush_without_hooks_does_not_wait_for_run_end_processing(store) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()
    seen: list[str] = []

    def blocking_hook(st, run_ids) -> None:  # type: ignore[no-untyped-def]
        release.wait(10)
        seen.extend(run_ids)

    pipeline.register(blocking_hook)
    try:
        with flightlog.run("wf") as run:
            pass
        assert flightlog.flush(10, hooks=False)  # durable, hook still blocked
        assert store.get_run(run.id) is not None and seen == []
        release.set()
        assert flightlog.flush(10)
        assert run.id in seen
    finally:
        release.set()
        pipeline.unregister(blocking_hook)
