"""The writer's parts on their own: processing (payloads, lineage, runs, privacy), the
run-end worker, and the writer with and without run-end processing."""

from __future__ import annotations

import threading
from typing import Any

import orjson

from flightlog import pipeline
from flightlog.lineage import MIN_CONTENT_BYTES
from flightlog.model import Edge, Run, Step
from flightlog.payload import digest, make_payload
from flightlog.privacy import load
from flightlog.sdk.processing import BatchBuilder
from flightlog.sdk.records import FlushMarker, Record, RunEvent, StepDone
from flightlog.sdk.runend import RunEndWorker
from flightlog.sdk.writer import Writer
from tests.unit.sdk.sinks import SlowSink

RUN = "a" * 32


def _step(i: int, inp: Any, out: Any, *, ended: int | None = None) -> StepDone:
    return StepDone(
        Step(RUN, f"{i:016x}", f"s{i}", "tool", i, i * 10, ended_ns=ended or i * 10 + 5),
        orjson.dumps(inp, option=orjson.OPT_SORT_KEYS),
        orjson.dumps(out, option=orjson.OPT_SORT_KEYS),
    )


def test_payloads_are_addressed_by_sha256_and_kept_once_per_batch() -> None:
    b = BatchBuilder(payload_cap=1024)
    big = "x" * 5000
    records: list[Record] = [_step(1, {"q": "same"}, 1), _step(2, {"q": "same"}, 2)]
    records.append(_step(3, {"q": big}, big))
    done = b.process(records)
    steps = done.batch.steps
    assert steps[0].input_hash == steps[1].input_hash == digest(b'{"q":"same"}')
    hashes = [p.hash for p in done.batch.payloads]
    assert len(hashes) == len(set(hashes)) == 5  # {"q":"same"}, 1, 2, and the two big ones
    capped = make_payload(orjson.dumps(big), 1024)
    assert steps[2].output_hash == capped.hash
    stored = {p.hash: p for p in done.batch.payloads}[capped.hash]
    assert stored.truncated and stored.size == len(orjson.dumps(big))


def test_content_lineage_from_long_outputs_only() -> None:
    b = BatchBuilder()
    policy = "Policy 7: water damage is covered up to 10,000 EUR"
    done = b.process([_step(1, {"q": "claim"}, policy), _step(2, {"text": policy}, "ok")])
    assert done.batch.edges == [Edge(RUN, f"{1:016x}", f"{2:016x}", "data", "content", "text")]
    # A short output (shorter JSON than MIN_CONTENT_BYTES) is no evidence: nothing indexed.
    b2 = BatchBuilder()
    short = 7
    assert len(orjson.dumps(short)) < MIN_CONTENT_BYTES
    done = b2.process([_step(1, {"q": "claim"}, short), _step(2, {"k": short}, "ok")])
    assert done.batch.edges == [] and b2.lineage == {}


def test_identity_sources_become_edges_before_content() -> None:
    b = BatchBuilder()
    rec = _step(2, {"docs": [1]}, None)
    rec.identity_sources = [(f"{1:016x}", "docs"), (f"{1:016x}", "docs"), (f"{2:016x}", "x")]
    done = b.process([rec])
    # Once per source, never from the step itself.
    assert done.batch.edges == [Edge(RUN, f"{1:016x}", f"{2:016x}", "data", "identity", "docs")]


def test_a_run_started_and_ended_in_one_batch_is_written_once_and_releases_lineage() -> None:
    b = BatchBuilder()
    start = Run(id=RUN, workflow="w", started_ns=1)
    end = Run(id=RUN, workflow="w", started_ns=1, ended_ns=9, status="succeeded")
    done = b.process(
        [
            RunEvent(start, input_json=b'{"claim":17}'),
            _step(1, {"q": "claim"}, "a long enough output to be indexed"),
            RunEvent(end, output_json=b'"done"', ended=True),
        ]
    )
    assert [r.status for r in done.batch.runs] == ["succeeded"]
    assert done.batch.runs[0].input_hash == digest(b'{"claim":17}')
    assert done.batch.runs[0].output_hash == digest(b'"done"')
    assert done.ended == [RUN]
    assert b.lineage == {} and b.lineage_bytes == 0


def test_a_malformed_record_is_counted_and_the_rest_kept() -> None:
    b = BatchBuilder()
    done = b.process([_step(1, {"q": 1}, 1), "not a record", _step(2, {"q": 2}, 2)])  # type: ignore[list-item]
    assert done.failed == 1 and done.error is not None and "not a record: str" in done.error
    assert len(done.batch.steps) == 2


def test_the_batch_is_scrubbed_before_it_leaves() -> None:
    b = BatchBuilder(privacy=load({}))
    done = b.process([_step(1, {"user": "alice@example.com"}, "sent to alice@example.com")])
    for p in done.batch.payloads:
        assert b"alice@example.com" not in p.data
    assert done.batch.steps[0].input_hash in {p.hash for p in done.batch.payloads}


def test_run_end_worker_runs_hooks_in_order_then_releases_markers(store: Any) -> None:
    seen: list[list[str]] = []
    gate = threading.Event()

    def hook(st: Any, run_ids: list[str]) -> None:
        gate.wait(10)
        seen.append(list(run_ids))

    pipeline.register(hook)
    worker = RunEndWorker(store)
    try:
        worker.after(["r1"])
        marker = FlushMarker()
        worker.release_after([marker])
        worker.after(["r2"])
        assert not marker.done.wait(0.05)  # still behind r1's hook
        gate.set()
        assert marker.done.wait(10) and marker.ok
        worker.stop(10)
        assert seen == [["r1"], ["r2"]]
    finally:
        gate.set()
        pipeline.unregister(hook)


def test_writer_without_run_end_processing_flushes_and_reports_drops_with_its_service() -> None:
    sink = SlowSink(0.05)
    w = Writer(sink, service=lambda: "claims-api", max_queue=2, batch_size=1, block_timeout=0.0)
    for i in range(20):
        w.submit(RunEvent(Run(id=f"{i:032x}", workflow="w", started_ns=i)))
    assert w.flush(10, hooks=True)  # no run-end worker: durable is done
    w.submit(RunEvent(Run(id="f" * 32, workflow="w", started_ns=99)))  # reports the drops
    assert w.flush(10)
    dropped = w.stats()["dropped"]
    assert dropped > 0
    recorder, service, count = sink.drop_reports[-1]
    assert service == "claims-api" and count == dropped and recorder.count(":") == 2
    assert len(sink.runs) + dropped == 21
    w.close()


def test_queue_hands_over_records_and_markers_in_order_and_counts_what_it_cannot_take(
    caplog: Any,
) -> None:
    from flightlog.sdk.batching import Drops, RecordQueue

    drops = Drops()
    q = RecordQueue(drops, max_items=3, block_timeout=0.0)
    first, second = _step(1, {}, 1), _step(2, {}, 2)
    q.submit(first)
    marker = FlushMarker()
    assert q.mark(marker, 0)
    q.submit(second)
    with caplog.at_level("WARNING", logger="flightlog"):
        q.submit(_step(3, {}, 3))  # full: no room within block_timeout
    assert drops.count == 1 and "dropped 1 record(s) so far (queue full)" in caplog.text
    records, markers, stopped = q.take(10, 0.0)
    assert records == [first, second] and markers == [marker] and not stopped
    assert q.enqueued == 2
    q.closed = True
    q.submit(first)
    assert drops.count == 2  # a closed writer takes nothing, and says so in the count
    later = FlushMarker()
    assert q.mark(later, 0)
    assert q.abandon() == 0 and later.done.is_set() and not later.ok
    q.stop()
    assert q.take(10, 0.0) == ([], [], True)


def test_drop_warnings_come_on_the_first_and_every_thousandth(caplog: Any) -> None:
    from flightlog.sdk.batching import Drops

    drops = Drops()
    with caplog.at_level("WARNING", logger="flightlog"):
        for _ in range(2500):
            drops.add(1, "queue full")
    assert caplog.text.count("flightlog dropped") == 3  # 1, 1000, 2000


def test_the_configured_store_is_known_without_reaching_through_the_sink(tmp_path: Any) -> None:
    import flightlog
    from flightlog.sdk import state

    url = f"sqlite:///{tmp_path / 'a.db'}"
    flightlog.configure(url)
    try:
        store = state.configured_store()
        assert store is not None and store.url == url
        assert state.configured_writer() is state.writer()
    finally:
        flightlog.shutdown()
    assert state.configured_store() is None
    # Records sent to a server: no local store (why() says to ask the server's store).
    flightlog.configure("http://127.0.0.1:9", spool_dir=str(tmp_path / "spool"))
    try:
        assert state.configured_store() is None and state.configured_writer() is not None
    finally:
        flightlog.shutdown()
