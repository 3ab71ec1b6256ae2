"""``flightlog.why`` with the SDK sending to a real ``flightlog serve``: the server's
attribution (``GET /api/v1/runs/{run}/attribution``), equal to the embedded one on the
server's store and to ``flightlog why --json``; read scope, projects, unknown runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import flightlog
from flightlog.access.keys import create_key
from flightlog.app import open_store
from flightlog.errors import ConfigurationError, NotFoundError
from flightlog.forensics import why as embedded_why
from flightlog.forensics.attribution import Attribution
from tests.conftest import run_cli
from tests.integration.server.conftest import ServerProcess
from tests.scenarios import SCENARIOS, record

SCENARIO = next(s for s in SCENARIOS if s.name == "claims-empty-retrieval")


@pytest.fixture
def keyed_server(server_factory: ServerProcess) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    store = open_store(server_factory.store_url)
    try:
        keys = {
            f"{p}-{s}": create_key(store, f"{p}-{s}", s, p)[1]
            for p in ("alpha", "beta")
            for s in ("ingest", "read", "admin")
        }
    finally:
        store.close()
    yield server_factory.start(), keys
    flightlog.shutdown()


def test_why_asks_the_server_and_equals_the_embedded_attribution(
    keyed_server: tuple[ServerProcess, dict[str, str]], tmp_path: Path
) -> None:
    server, keys = keyed_server
    flightlog.configure(server.url, api_key=keys["alpha-admin"], spool_dir=str(tmp_path / "sp"))
    rid = record(SCENARIO, history=5)
    # No flush by the caller: why() flushes and the server has the run ended on its answer.
    att = flightlog.why(rid)
    assert isinstance(att, Attribution) and att.failed and att.status == "failed"
    assert att.root_cause is not None and att.failure_point is not None
    assert (att.root_cause.name, att.root_cause.agent) == (SCENARIO.step, SCENARIO.agent)
    # The same attribution as the embedded path computes on the server's store...
    store = open_store(server.store_url)
    try:
        local = embedded_why(store, rid)
    finally:
        store.close()
    assert att == Attribution.from_dict(local.to_dict())
    assert att.to_dict() == local.to_dict()
    # ... and the endpoint answers what `flightlog why --json` prints, by id prefix too.
    cli = run_cli("why", rid, "--db", server.store_url, "--json", check=True)
    alpha = {"Authorization": f"Bearer {keys['alpha-read']}"}
    for ref in (rid, rid[:8]):
        r = httpx.get(f"{server.url}/api/v1/runs/{ref}/attribution", headers=alpha, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json() == json.loads(cli.stdout)
    # A read key given to why() (the SDK's own key may be ingest-only); a passing run too.
    listed = httpx.get(f"{server.url}/api/v1/runs?status=succeeded", headers=alpha, timeout=30)
    ok = listed.json()["runs"][0]["id"]
    passed = flightlog.why(ok, api_key=keys["alpha-read"])
    assert not passed.failed and passed.status == "succeeded" and passed.root_cause is None
    # Another project's key sees no such run: 404 on the REST API, NotFoundError in the SDK.
    beta = {"Authorization": f"Bearer {keys['beta-read']}"}
    r = httpx.get(f"{server.url}/api/v1/runs/{rid}/attribution", headers=beta, timeout=30)
    assert r.status_code == 404 and SCENARIO.step not in r.text
    with pytest.raises(NotFoundError, match=f"has no run {rid} in the key's project"):
        flightlog.why(rid, api_key=keys["beta-read"])
    with pytest.raises(NotFoundError, match="has no run"):
        flightlog.why("f" * 32)  # everything delivered: no wait for a run nobody sends
    # An ingest-only key: a clear error asking for a read key.
    flightlog.configure(server.url, api_key=keys["alpha-ingest"], spool_dir=str(tmp_path / "sp"))
    rid2 = record(SCENARIO, history=0)
    with pytest.raises(ConfigurationError, match="needs a read key") as err:
        flightlog.why(rid2)
    assert "HTTP 403" in str(err.value) and "--scope read" in str(err.value)
    assert flightlog.why(rid2, api_key=keys["alpha-read"]).root_cause is not None
    doc = httpx.get(f"{server.url}/openapi.json", headers=alpha, timeout=30).json()
    assert "/api/v1/runs/{run_id}/attribution" in doc["paths"]


def test_why_over_a_server_without_keys_and_a_url_that_is_not_a_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    flightlog.configure(server.url + "/v1/traces", spool_dir=str(tmp_path / "sp"))
    try:
        rid = record(SCENARIO, history=0)
        att = flightlog.why(rid[:10])  # a prefix, resolved by the server
        assert att.run_id == rid and att.root_cause is not None
        store = open_store(server.store_url)
        try:
            assert att.to_dict() == embedded_why(store, rid).to_dict()
        finally:
            store.close()
    finally:
        flightlog.shutdown()
    # Something else listening at the URL (a web server, a Collector): says it is no server.
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        flightlog.configure(url, spool_dir=str(tmp_path / "other"))
        with pytest.raises(ConfigurationError, match="needs a Flightlog server"):
            flightlog.why("ab" * 16)
    finally:
        flightlog.shutdown()
        httpd.shutdown()
