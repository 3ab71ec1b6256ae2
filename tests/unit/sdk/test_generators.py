"""Generator functions as steps, and the rule for a run's explicit outcome: through the
public SDK into a real SQLite file."""

from __future__ import annotations

import asyncio
import inspect
import logging

import pytest

import flightlog
from flightlog.payload import decode


def _record(store, run_id):  # type: ignore[no-untyped-def]
    flightlog.flush()
    return store.get_record(run_id)


def _payload(store, h):  # type: ignore[no-untyped-def]
    return decode(store.get_payloads([h])[h]) if h else None


@flightlog.step(kind="tool")
def lookup(q: str) -> str:
    return f"doc about {q}"


@flightlog.step(kind="llm")
def stream(prompt: str, n: int = 3):  # type: ignore[no-untyped-def]
    context = lookup(prompt)  # opened inside the body: a child of the stream step
    for i in range(n):
        yield f"{context}:{i}"


def test_an_exhausted_generator_records_one_step_over_its_iteration(store) -> None:  # type: ignore[no-untyped-def]
    assert inspect.isgeneratorfunction(stream)
    with flightlog.run("wf") as run:
        chunks = []
        for chunk in stream("water", n=3):
            chunks.append(chunk)
            assert flightlog.current_step() is None  # the body's step does not leak out
            with flightlog.step("consume", kind="function"):
                pass
    rec = _record(store, run.id)
    by_name: dict[str, list] = {}
    for s in rec.steps:
        by_name.setdefault(s.name, []).append(s)
    (st,) = by_name["stream"]
    (lk,) = by_name["lookup"]
    assert st.status == "ok" and st.attributes["yielded"] == 3
    assert _payload(store, st.input_hash) == {"prompt": "water", "n": 3}
    assert _payload(store, st.output_hash) == chunks == [f"doc about water:{i}" for i in range(3)]
    assert lk.parent_id == st.id
    consumes = by_name["consume"]
    assert len(consumes) == 3 and all(c.parent_id is None for c in consumes)
    # the step spans the iteration: it ends after the last item was consumed
    assert st.ended_ns >= max(c.ended_ns for c in consumes)
    assert rec.run.status == "succeeded"


def test_a_consumer_that_stops_early_closes_the_step_without_failing_it(store) -> None:  # type: ignore[no-untyped-def]
    closed = []

    @flightlog.step
    def numbers():  # type: ignore[no-untyped-def]
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    with flightlog.run("wf") as run:
        for x in numbers():
            if x == 2:
                break
    rec = _record(store, run.id)
    (st,) = rec.steps
    assert closed == [True]
    assert st.status == "ok" and st.attributes["closed_early"] is True
    assert _payload(store, st.output_hash) == [0, 1, 2]
    assert rec.run.status == "succeeded"


def test_an_exception_inside_fails_the_step_and_send_throw_pass_through(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step
    def echo():  # type: ignore[no-untyped-def]
        got = yield "ready"
        while True:
            try:
                got = yield f"echo {got}"
            except KeyError:
                got = "recovered"
            if got == "boom":
                raise ValueError("bad chunk")

    with pytest.raises(ValueError, match="bad chunk"), flightlog.run("wf") as run:
        g = echo()
        assert next(g) == "ready"
        assert g.send("a") == "echo a"
        assert g.throw(KeyError("k")) == "echo recovered"
        g.send("boom")
    rec = _record(store, run.id)
    (st,) = rec.steps
    assert st.status == "error" and st.error is not None and st.error.type == "ValueError"
    assert rec.run.status == "failed" and rec.run.failed_step_id == st.id


def test_a_generator_never_iterated_records_nothing(store) -> None:  # type: ignore[no-untyped-def]
    with flightlog.run("wf") as run:
        stream("never")
    assert _record(store, run.id).steps == []


def test_async_generators_record_their_iteration(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="llm")
    async def astream(prompt: str):  # type: ignore[no-untyped-def]
        context = lookup(prompt)
        for i in range(4):
            await asyncio.sleep(0)
            got = yield f"{context}:{i}"
            if got == "stop":
                raise RuntimeError("asked to stop")

    assert inspect.isasyncgenfunction(astream)

    async def main() -> tuple[str, str, str]:
        with flightlog.run("wf") as run:
            async for _chunk in astream("a"):
                assert flightlog.current_step() is None
                with flightlog.step("consume"):
                    await asyncio.sleep(0)
            g = astream("b")
            async for _ in g:
                break
            await g.aclose()
        with flightlog.run("wf") as failing:
            g = astream("c")
            assert await g.asend(None) == "doc about c:0"
            with pytest.raises(RuntimeError, match="asked to stop"):
                await g.asend("stop")
        with flightlog.run("wf") as thrown:
            g = astream("d")
            await g.__anext__()
            with pytest.raises(KeyError):
                await g.athrow(KeyError("x"))
        return run.id, failing.id, thrown.id

    run_id, failing_id, thrown_id = asyncio.run(main())
    rec = _record(store, run_id)
    streams = [s for s in rec.steps if s.name == "astream"]
    assert [s.status for s in streams] == ["ok", "ok"]
    assert _payload(store, streams[0].output_hash) == [f"doc about a:{i}" for i in range(4)]
    assert streams[1].attributes["closed_early"] is True
    assert _payload(store, streams[1].output_hash) == ["doc about b:0"]
    lookups = [s for s in rec.steps if s.name == "lookup"]
    assert [lk.parent_id for lk in lookups] == [s.id for s in streams]
    assert all(s.parent_id is None for s in rec.steps if s.name == "consume")
    failing = _record(store, failing_id)
    (fs,) = [s for s in failing.steps if s.name == "astream"]
    assert fs.status == "error" and fs.error is not None and fs.error.type == "RuntimeError"
    thrown = _record(store, thrown_id)
    (ts,) = [s for s in thrown.steps if s.name == "astream"]
    assert ts.status == "error" and ts.error is not None and ts.error.type == "KeyError"


def test_a_long_stream_keeps_a_bounded_output(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from flightlog.sdk import streams

    monkeypatch.setattr(streams, "MAX_ITEMS", 5)

    @flightlog.step
    def count(n: int):  # type: ignore[no-untyped-def]
        yield from range(n)

    with flightlog.run("wf") as run:
        assert sum(count(50)) == sum(range(50))
    (st,) = _record(store, run.id).steps
    assert st.attributes["yielded"] == 50 and st.attributes["items_kept"] == 5
    assert _payload(store, st.output_hash) == [0, 1, 2, 3, 4]


def test_a_stream_of_large_items_keeps_no_more_than_the_payload_cap(store) -> None:  # type: ignore[no-untyped-def]
    """Items are kept only until those kept encode to more than the payload cap (256 KiB by
    default): the recording does not hold a long stream of large chunks alive."""

    @flightlog.step
    def chunks(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield str(i) * 100_000

    with flightlog.run("wf") as run:
        assert sum(len(c) for c in chunks(40)) > 4_000_000
    (st,) = _record(store, run.id).steps
    assert st.attributes["yielded"] == 40 and st.attributes["items_kept"] == 3


def test_succeed_after_fail_keeps_the_failure_and_warns(store, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.WARNING, logger="flightlog"), flightlog.run("wf") as run:
        run.fail("x")
        run.succeed({"answer": 1})
    rec = _record(store, run.id)
    assert rec.run.status == "failed" and rec.run.reason == "x"
    assert _payload(store, rec.run.output_hash) == {"answer": 1}
    (msg,) = [r.getMessage() for r in caplog.records if "succeed" in r.getMessage()]
    assert "run.succeed()" in msg and "run.fail('x')" in msg and run.id in msg

    with flightlog.run("wf") as later:  # a failure after a success is the outcome
        later.succeed()
        later.fail("y")
    assert _record(store, later.id).run.status == "failed"


def test_replay_answers_a_generator_step_with_its_recorded_or_overridden_items(store) -> None:  # type: ignore[no-untyped-def]
    calls = []

    @flightlog.step(kind="tool")
    def retrieve(q: str):  # type: ignore[no-untyped-def]
        calls.append(q)
        yield from ([] if "storm" in q else [f"clause for {q}"])

    def workflow(claim: str) -> str:
        with flightlog.run("gen-replay", input=claim) as run:
            clauses = list(retrieve(claim))
            if not clauses:
                run.fail("no clause")
            return run.id

    run_id = workflow("storm damage")
    flightlog.flush()
    calls.clear()
    again = flightlog.replay(workflow, run_id, store=store)
    assert again.status == "failed" and calls == []  # answered from the recording
    fixed = flightlog.replay(workflow, run_id, {"retrieve": ["HS-7 storm"]}, store=store)
    assert fixed.status == "succeeded" and calls == []
