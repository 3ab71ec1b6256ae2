"""Under backpressure the server says so (429/503 with Retry-After) instead of buffering
without bound or acknowledging what it has not stored."""

from __future__ import annotations

import base64
import gzip
import os
import sqlite3
import threading

import httpx
import orjson

from tests.integration.server.conftest import wait_until

JS = {"Content-Type": "application/json"}


def _body(trace: str) -> bytes:
    span = {
        "traceId": trace,
        "spanId": "00000000000000a1",
        "name": "root",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
    }
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


def _lock(db: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # holds the write lock; readers carry on (WAL)
    return conn


def test_full_queue_answers_429_with_retry_after(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory.start("--queue-spans", "1")
    client = httpx.Client(base_url=server.url, timeout=30)
    assert client.post("/v1/traces", content=_body("1" * 32), headers=JS).status_code == 200
    lock = _lock(str(server.db))
    first: dict[str, httpx.Response] = {}
    t = threading.Thread(
        target=lambda: first.setdefault(
            "r",
            httpx.post(server.url + "/v1/traces", content=_body("2" * 32), headers=JS, timeout=30),
        )
    )
    t.start()
    try:
        # The first request waits for the store; the queue (1 span) is now full.
        assert wait_until(lambda: client.get("/readyz").status_code == 503)
        assert "full" in str(client.get("/readyz").json()["problems"])
        resp = client.post("/v1/traces", content=_body("3" * 32), headers=JS)
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "1"
        assert "queue is full" in resp.json()["message"]
        assert "r" not in first  # not acknowledged while not stored
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    t.join(30)
    assert first["r"].status_code == 200  # stored once the store was free
    assert client.get("/api/v1/runs/" + "2" * 32).status_code == 200
    assert client.get("/api/v1/runs/" + "3" * 32).status_code == 404
    assert client.get("/readyz").status_code == 200


def test_unwritable_store_answers_503_with_retry_after(server_factory) -> None:  # type: ignore[no-untyped-def]
    server_factory.env = {"FLIGHTLOG_SQLITE_BUSY_TIMEOUT_MS": "300"}
    server = server_factory.start()
    client = httpx.Client(base_url=server.url, timeout=30)
    lock = _lock(str(server.db))
    try:
        resp = client.post("/v1/traces", content=_body("4" * 32), headers=JS)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert "could not be written" in resp.json()["message"]
    # Retrying once the store is free succeeds, and the server stayed up.
    assert client.post("/v1/traces", content=_body("4" * 32), headers=JS).status_code == 200
    assert client.get("/api/v1/runs/" + "4" * 32).status_code == 200


def _gzip_body(trace: str) -> bytes:
    """A gzip OTLP/JSON body weighing a largest body in the decode budget (8 × its compressed
    size, capped at the 10 MiB body limit): random text barely compresses."""
    span = {
        "traceId": trace,
        "spanId": "00000000000000b1",
        "name": "root",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
        "attributes": [
            {
                "key": "input.value",
                "value": {"stringValue": base64.b64encode(os.urandom(1_400_000)).decode()},
            }
        ],
    }
    body = gzip.compress(orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}))
    assert len(body) * 8 > 10 << 20  # two such bodies do not fit the decode budget together
    return body


def test_a_request_waiting_for_the_commit_does_not_hold_the_decode_budget(server_factory) -> None:  # type: ignore[no-untyped-def]
    # Decode budget: the 10 MiB body limit + 8 MiB; each body below weighs 10 MiB in it, so
    # the two can decode at once only if the first gives its slot back once decoded.
    server_factory.env = {"FLIGHTLOG_SQLITE_BUSY_TIMEOUT_MS": "120000"}
    server = server_factory.start("--max-body-mb", "10")
    client = httpx.Client(base_url=server.url, timeout=60)
    bodies = {"a" * 32: _gzip_body("a" * 32), "b" * 32: _gzip_body("b" * 32)}
    answers: dict[str, httpx.Response] = {}

    def post(trace: str) -> None:
        answers[trace] = httpx.post(
            server.url + "/v1/traces",
            content=bodies[trace],
            headers={**JS, "Content-Encoding": "gzip"},
            timeout=120,
        )

    def stats() -> dict:  # type: ignore[type-arg]
        return client.get("/api/v1/ingest/stats").json()  # type: ignore[no-any-return]

    lock = _lock(str(server.db))  # the writer cannot commit: both requests wait for it
    threads = [threading.Thread(target=post, args=(t,)) for t in bodies]
    try:
        threads[0].start()
        assert wait_until(lambda: stats()["pending_spans"] == 1, timeout=30)
        threads[1].start()
        # The second body is decoded and queued while the first still waits for the commit.
        assert wait_until(lambda: stats()["pending_spans"] == 2, timeout=30), stats()
        now = stats()
        assert now["admission_waiting_for_decode"] == 0
        # What waits for the commit still counts against the bytes-held budget (memory bound):
        # both bodies, decompressed.
        assert now["body_bytes_held"] >= 2 * 1_800_000
        assert not answers  # nothing acknowledged before it is stored
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        for t in threads:
            t.join(120)
    assert [answers[t].status_code for t in bodies] == [200, 200]
    for t in bodies:
        assert client.get("/api/v1/runs/" + t).status_code == 200
    assert stats()["body_bytes_held"] == 0
