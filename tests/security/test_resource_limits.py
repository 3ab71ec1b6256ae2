"""Slow clients, huge bodies and load shedding against a real server on loopback, with real
sockets: ingestion keeps going, memory stays bounded, ``/readyz`` tells the truth."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest

from flightlog.app import open_store
from tests.security.otlp import NS, request, span, trace_id

JS = {"Content-Type": "application/json"}


def _slow_client(port: int, declared: int, sent: bytes = b"{") -> socket.socket:
    """A client that sends its headers and ``sent``, then nothing."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(
        b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
        + sent
    )
    return s


def _status_of(s: socket.socket) -> int:
    data = s.recv(200)
    return int(data.split(b" ", 2)[1]) if data else 0


def _rss(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of a process, in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) >> 10, int(fields["VmHWM"].split()[0]) >> 10


def test_slow_clients_do_not_stall_ingestion(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory
    srv.env = {"FLIGHTLOG_BODY_IDLE_TIMEOUT": "2"}
    srv.start()
    slow = [_slow_client(srv.port, 10_000) for _ in range(8)]
    try:
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 200
        t = trace_id()
        r = httpx.post(srv.url + "/v1/traces", content=request(span(t)), headers=JS, timeout=30)
        assert r.status_code == 200  # not queued behind the 8 stalled bodies
        store = open_store(srv.store_url, readonly=True)
        try:
            assert store.get_run(t) is not None
        finally:
            store.close()
        # the stalled requests end with 408 once no byte came for the idle timeout
        assert [_status_of(s) for s in slow] == [408] * 8
    finally:
        for s in slow:
            s.close()
    stats = httpx.get(srv.url + "/api/v1/ingest/stats").json()
    assert stats["admission_timeouts"] == 8 and stats["body_bytes_held"] == 0


def test_bodies_beyond_the_memory_budget_are_shed_with_429(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory.start("--max-body-mb", "1")  # holds at most 2 MiB + 16 MiB of bodies
    chunk = b" " * ((1 << 20) - 16)
    holders = [_slow_client(srv.port, 1 << 20, chunk) for _ in range(18)]
    try:
        deadline = time.monotonic() + 30
        while httpx.get(srv.url + "/readyz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 503
        assert "memory budget" in ready.text
        r = httpx.post(
            srv.url + "/v1/traces", content=request(span(trace_id())) + b" " * 100_000, headers=JS
        )
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
    finally:
        for s in holders:
            s.close()
    deadline = time.monotonic() + 30
    while httpx.get(srv.url + "/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    r = httpx.post(srv.url + "/v1/traces", content=request(span(trace_id())), headers=JS)
    assert r.status_code == 200


def _many_spans_body(target: int) -> tuple[bytes, int]:
    """About ``target`` bytes of OTLP/JSON: traces of 4 spans with 1 KiB inputs."""
    spans = []
    size = 0
    while size < target:
        t = trace_id()
        root = span(t, name="agent", start=NS, **{"input.value": "q" * 1000})
        spans.append(root)
        for i in range(3):
            s = span(t, name=f"tool-{i}", parent=root["spanId"], **{"input.value": str(i) * 1000})
            spans.append(s)
        size += 4 * 1300
    body = request(*spans)
    return body, len(spans)


def _body(shape: str) -> tuple[bytes, int]:
    if shape == "many-spans":
        return _many_spans_body(25 << 20)
    t = trace_id()
    huge = span(t, name="huge", **{"input.value": "x" * (25 << 20)})
    return request(span(t, name="root"), huge), 2


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["many-spans", "one-huge-value"])
def test_a_25_mb_body_keeps_memory_bounded(server_factory, shape: str) -> None:  # type: ignore[no-untyped-def]
    """The issue's body of 25 MB drove the server to 4.6 GB RSS, kept after. Target: peak
    RSS under 300 MB, released after (what a second such body leaves is the bounded page
    cache, not the body)."""
    srv = server_factory.start()
    pid = srv.proc.pid
    warm = httpx.post(srv.url + "/v1/traces", content=request(span(trace_id())), headers=JS)
    assert warm.status_code == 200  # modules a first request loads are not the body's memory
    idle, _ = _rss(pid)
    afters, peaks = [], []
    for _ in range(2):
        body, n = _body(shape)
        r = httpx.post(srv.url + "/v1/traces", content=body, headers=JS, timeout=600)
        assert r.status_code == 200, r.text[:300]
        assert "partialSuccess" not in orjson.loads(r.content)
        del body
        time.sleep(2)  # let run-end processing of the new runs finish (not a timing assertion)
        after, peak = _rss(pid)
        afters.append(after)
        peaks.append(peak)
        print(f"{shape}: 25 MiB, {n} spans: RSS {idle} idle, {peak} peak, {after} after")
    assert peaks[0] < 300  # the target, for the body that drove the server to 4.6 GB
    # What stays is the SQLite page cache (bounded by design at 64 MiB per connection, the
    # writer's and the reader's) and the run-end pipeline's per-workflow history; after a second
    # body it stays below the target instead of growing by the body (4.6 GB kept before).
    # Known: a second many-span body of 25 MiB can peak near 300 MB and leave up to ~40 MB more
    # than the first on a loaded machine (see docs/security.md); not yet explained.
    assert afters[1] < 300
