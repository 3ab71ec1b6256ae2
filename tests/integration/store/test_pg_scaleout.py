"""Three ``flightlog serve`` processes on one PostgreSQL database, one of them SIGKILLed.

A round-robin client sends 100,000 spans as OTLP/HTTP protobuf (encoded by OpenTelemetry's
own encoder) to three real servers at once, from several threads. Each trace's spans are
spread over neighbouring requests, so most traces are written by two or three servers
concurrently (stand-in runs, late roots, step reordering under contention). When a third
of the requests are acknowledged, one server is killed with SIGKILL; a request it did not
answer with 200 goes to the next server, as a load balancer would. Afterwards: every span
is stored exactly once, every span the killed server acknowledged is among them, and
``flightlog audit verify`` passes on the database.

The client and server helpers are the scale-out benchmark's (``bench/pg_scaleout.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")
pytest.importorskip("httpx")

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench._ingest_spans import SPANS_PER_TRACE  # noqa: E402
from bench.pg_scaleout import (  # noqa: E402
    SPANS_PER_REQUEST,
    Request,
    Sent,
    Server,
    iter_requests,
    send_round_robin,
    start_servers,
    stop_all,
)

pytestmark = pytest.mark.slow

TRACES = 25_000  # x 4 spans = 100,000 spans
REQUESTS = TRACES * SPANS_PER_TRACE // SPANS_PER_REQUEST
SERVERS = 3
# The server that is killed: the one integrating the audit log at that moment, so the kill
# also shows the integrator role taken over (docs/audit.md, Sequencing).


def _integrator_pid(pg_url: str) -> int | None:
    from flightlog.app import open_store
    from flightlog.ledger.log import INTEGRATOR_ROLE
    from flightlog.store.leader import holder

    store = open_store(pg_url, readonly=True)
    try:
        with store.read() as tx:
            held = holder(tx, INTEGRATOR_ROLE)
    finally:
        store.close()
    return None if held is None else held[0]


@pytest.fixture
def requests() -> Iterator[Iterator[Request]]:
    """The requests, built by two processes from now on (while the servers start, and while
    the first requests are sent): the same requests one process builds, ~half the wait."""
    built = iter_requests(TRACES, workers=2)
    try:
        yield built
    finally:
        built.close()  # a failed test: stop the builders


@pytest.fixture
def servers(pg_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    # One signing key file for all three, as a deployment shares one secret.
    env = {"FLIGHTLOG_LEDGER_KEY": str(tmp_path / "ledger.key")}
    started = start_servers(pg_url, SERVERS, tmp_path, env)
    try:
        yield started
    finally:
        stop_all(started)


def test_three_servers_one_killed_lose_and_duplicate_nothing(
    requests: Iterator[Request], servers: list[Server], pg_url: str, tmp_path: Path
) -> None:
    built: list[Request] = []

    def sending() -> Iterator[Request]:
        for request in requests:
            built.append(request)
            yield request

    dead: set[int] = set()
    lock = threading.Lock()
    pids = [s.proc.pid for s in servers]

    def kill_a_third_of_the_way(sent: Sent) -> None:
        with lock:
            if dead or sent.acked() < REQUESTS // 3:
                return
            integrator = _integrator_pid(pg_url)
            assert integrator in pids, f"the integrator {integrator} is none of {pids}"
            dead.add(pids.index(integrator))
        servers[pids.index(integrator)].proc.send_signal(signal.SIGKILL)

    sent = send_round_robin(
        servers, sending(), threads=6, dead=dead, on_ack=kill_a_third_of_the_way
    )
    assert not sent.failures, sent.failures[:5]
    every = {k for _, keys in built for k in keys}
    assert len(built) == REQUESTS
    assert len(every) == sum(len(keys) for _, keys in built) == 100_000
    assert len(dead) == 1
    victim = next(iter(dead))
    assert servers[victim].proc.wait(30) == -signal.SIGKILL
    # Another server took the integrator role over and integrated everything acknowledged.
    import time

    from flightlog.app import open_store
    from flightlog.ledger import attach

    store = open_store(pg_url)
    try:
        ledger = attach(store)
        deadline = time.monotonic() + 300
        while ledger.pending() or _integrator_pid(pg_url) in (None, pids[victim]):
            assert time.monotonic() < deadline, (ledger.pending(), _integrator_pid(pg_url))
            time.sleep(0.2)
        assert _integrator_pid(pg_url) in [p for n, p in enumerate(pids) if n != victim]
    finally:
        store.close()
    assert sorted(i for v in sent.acked_by.values() for i in v) == list(range(REQUESTS))
    assert sent.acked_by[victim], "the killed server had acknowledged nothing"
    stop_all([s for n, s in enumerate(servers) if n != victim])

    import psycopg

    with psycopg.connect(pg_url) as conn:
        stored = {(r[0], r[1]) for r in conn.execute("SELECT run_id, id FROM steps")}
        (rows,) = conn.execute("SELECT COUNT(*) FROM steps").fetchone() or (0,)
        (runs,) = conn.execute("SELECT COUNT(*) FROM runs").fetchone() or (0,)
    # Nothing lost, nothing duplicated.
    assert rows == len(stored) == len(every)
    assert stored == every
    assert runs == TRACES
    # What the killed server acknowledged before it died is all there.
    victim_keys = {k for i in sent.acked_by[victim] for k in built[i][1]}
    assert victim_keys and victim_keys <= stored

    verify = subprocess.run(
        [sys.executable, "-m", "flightlog", "audit", "verify", "--db", pg_url, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "FLIGHTLOG_LEDGER_KEY": str(tmp_path / "ledger.key")},
        cwd=tmp_path,
        timeout=600,
    )
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]
    report = json.loads(verify.stdout)
    assert report.get("ok") is True, report
