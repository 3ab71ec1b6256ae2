"""A server whose PostgreSQL database is gone (dropped, or the server down) still stops on
SIGTERM: what it can no longer write is given up and said in its log, instead of its
ledger integrator and tail checkpoint each waiting for a connection that cannot come (it
took minutes to exit)."""

from __future__ import annotations

import time

import httpx

from tests import pg
from tests.integration.server.conftest import ServerProcess


def test_a_server_whose_database_was_dropped_stops_on_sigterm(
    server_factory: ServerProcess, pg_url: str
) -> None:
    server_factory.store = pg_url
    srv = server_factory.start()
    now = time.time_ns()
    span = {
        "traceId": "0123456789abcdef0123456789abcdef",
        "spanId": "0123456789abcdef",
        "name": "wf",
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now),
    }
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    assert httpx.post(srv.url + "/v1/traces", json=body, timeout=30).status_code == 200
    pg.drop_database(pg_url)  # its connections are ended with it
    assert srv.proc is not None
    srv.proc.terminate()
    # a liveness bound, not a timing claim: it waited twice the pool's 60 s before
    assert srv.proc.wait(50) is not None
    assert "unreachable at close" in srv.log.read_text()
