"""The remote SDK loses nothing: server killed mid-stream, or down for the app's lifetime."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import flightlog
from flightlog.app import open_store

N = 10_000


def _wait_for(predicate, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _counts(store_url: str, run_id: str) -> tuple[int, int, list[int]]:
    store = open_store(store_url)
    try:
        with store.read() as tx:
            total, distinct = tx.fetchone(
                "SELECT COUNT(*), COUNT(DISTINCT id) FROM steps WHERE run_id = ?", (run_id,)
            )
            idx = [
                r[0]
                for r in tx.fetchall(
                    "SELECT idx FROM steps WHERE run_id = ? ORDER BY idx", (run_id,)
                )
            ]
        return int(total), int(distinct), idx
    finally:
        store.close()


@pytest.mark.slow
def test_server_killed_mid_stream_and_restarted(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = server_factory.start()
    flightlog.configure(server.url, spool_dir=str(tmp_path / "spool"), batch_size=200)
    done = threading.Event()
    progress = {"i": 0}

    def chaos() -> None:
        while progress["i"] < N // 4 and not done.is_set():
            time.sleep(0.005)
        server.kill()  # SIGKILL, requests in flight
        time.sleep(1.0)
        server.start()
        done.set()

    @flightlog.step(kind="tool", agent="worker")
    def work(i: int) -> dict[str, int]:
        return {"i": i, "square": i * i}

    killer = threading.Thread(target=chaos)
    killer.start()
    try:
        with flightlog.run("loss-test", owner="qa", steps=N) as run:
            for i in range(N):
                progress["i"] = i
                work(i)
                if i % 500 == 0:
                    time.sleep(0.01)  # let the chaos thread act mid-stream
        killer.join(60)
        assert done.is_set()
        assert flightlog.flush(60)
        sink_stats = flightlog.stats()["sink"]
        assert _wait_for(lambda: flightlog.stats()["sink"]["spool_pending_batches"] == 0)
        final = flightlog.stats()["sink"]
    finally:
        flightlog.shutdown()
    total, distinct, idx = _counts(server.store_url, run.id)
    assert (total, distinct) == (N, N)
    assert idx == list(range(1, N + 1))
    stored = open_store(server.store_url).get_run(run.id)
    assert stored is not None and stored.status == "succeeded"
    assert final["spool_dropped_records"] == 0 and final["rejected_batches"] == 0
    # The kill really interrupted delivery: some batches went through the spool.
    assert final["spooled_batches"] > 0 or sink_stats["retries"] > 0


APP = textwrap.dedent("""
    import sys, flightlog
    flightlog.configure(sys.argv[1], spool_dir=sys.argv[2])
    n = int(sys.argv[3])

    @flightlog.step(kind="tool")
    def work(i):
        return i

    if n:
        with flightlog.run("offline-app", owner="qa") as run:
            for i in range(n):
                work(i)
        print(run.id)
    else:  # a long-running app: give the replayer time to deliver what was spooled
        import time
        deadline = time.monotonic() + 120
        while flightlog.stats()["sink"]["spool_pending_batches"] and time.monotonic() < deadline:
            time.sleep(0.05)
    flightlog.shutdown()
""")


@pytest.mark.slow
def test_spool_replayed_by_next_process_after_server_comes_up(  # type: ignore[no-untyped-def]
    server_factory, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    app = tmp_path / "app.py"
    app.write_text(APP)
    url = server_factory.url  # nothing listens there yet
    first = subprocess.run(
        [sys.executable, str(app), url, str(spool), str(N)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.strip().splitlines()[-1]
    assert list(spool.glob("*.otlp")), "the app should have spooled while the server was down"
    server_factory.start()
    second = subprocess.run(
        [sys.executable, str(app), url, str(spool), "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    total, distinct, idx = _counts(server_factory.store_url, run_id)
    assert (total, distinct) == (N, N)
    assert idx == list(range(1, N + 1))
    assert not list(spool.glob("*.otlp"))
