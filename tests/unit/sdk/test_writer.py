"""The background writer: back-pressure, counted drops, retries on a locked store."""

from __future__ import annotations

import sqlite3
import threading
import time

import flightlog
from flightlog.model import Batch, Run
from flightlog.sdk.writer import RunEvent, Writer
from tests.unit.sdk.sinks import SlowSink


def _run(i: int) -> RunEvent:
    return RunEvent(Run(id=f"{i:032x}", workflow="w", started_ns=i))


def test_full_queue_blocks_briefly_then_counts_drops() -> None:
    sink = SlowSink(0.2)
    w = Writer(sink, max_queue=5, batch_size=1, block_timeout=0.01)
    for i in range(50):
        w.submit(_run(i))
    assert w.flush(10)
    st = w.stats()
    assert st["dropped"] > 0
    assert st["enqueued"] + st["dropped"] == 50
    assert len(sink.runs) == st["enqueued"]  # everything accepted was written
    w.close()


def test_back_pressure_without_drops_when_the_sink_keeps_up() -> None:
    sink = SlowSink(0.001)
    w = Writer(sink, max_queue=10, batch_size=5, block_timeout=5.0)
    for i in range(200):
        w.submit(_run(i))
    assert w.flush(10)
    assert w.stats()["dropped"] == 0 and len(sink.runs) == 200
    w.close()


def test_locked_store_is_retried_and_nothing_is_lost(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FLIGHTLOG_SQLITE_BUSY_TIMEOUT_MS", "200")
    path = str(tmp_path / "locked.db")
    flightlog.configure(f"sqlite:///{path}")
    store = flightlog.open_store(f"sqlite:///{path}")
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    blocker.execute("PRAGMA busy_timeout=0")
    blocker.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(1.5, lambda: blocker.execute("COMMIT"))
    release.start()
    try:
        with flightlog.run("locked") as run:
            pass
        assert flightlog.flush(60)
    finally:
        release.join()
        blocker.close()
    assert store.get_run(run.id) is not None
    st = flightlog.stats()
    assert st["dropped"] == 0 and st["write_failures"] >= 1
    flightlog.shutdown()
    store.close()


def test_drops_are_recorded_in_the_store_and_shown_by_the_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flightlog.sdk.sink import StoreSink
    from tests.conftest import run_cli

    url = f"sqlite:///{tmp_path / 'drops.db'}"
    store = flightlog.open_store(url)

    class SlowStoreSink(StoreSink):
        def write(self, batch: Batch) -> None:
            time.sleep(0.05)
            super().write(batch)

    w = Writer(SlowStoreSink(store), max_queue=3, batch_size=1, block_timeout=0.001)
    for i in range(40):
        w.submit(_run(i))
    assert w.flush(30)
    w.submit(_run(99))  # the next batch after the drops reports them
    assert w.flush(30)
    dropped = w.stats()["dropped"]
    assert dropped > 0 and store.dropped_records() == dropped
    out = run_cli("runs", "--db", url)
    assert f"dropping {dropped} record(s)" in out.stderr
    w.close()
