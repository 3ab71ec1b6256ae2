"""API keys, scopes and projects against a real server: every route refuses without a key,
with a revoked or unknown one, with the wrong scope, and never crosses projects."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys

import httpx
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from flightlog.access.keys import create_key, revoke_key
from flightlog.app import open_store
from flightlog.sdk.remote import RemoteSink
from tests.security.conftest import Keyed
from tests.security.otlp import request, span, trace_id

JS = {"Content-Type": "application/json"}
READ_ROUTES = (
    "/api/v1/runs",
    "/api/v1/workflows",
    "/openapi.json",
    "/",
    "/incidents",
)


def _ingest(k: Keyed, key: str, body: bytes) -> httpx.Response:
    return httpx.post(k.url + "/v1/traces", content=body, headers=JS | k.auth(key), timeout=30)


def _alpha_run(k: Keyed) -> tuple[str, str]:
    """An alpha run with a failing child step; returns (run id, the child's input hash)."""
    trace, root = trace_id(), "a1a1a1a1a1a1a1a1"
    body = request(
        span(trace, root, name="alpha-flow", error=True),
        span(
            trace,
            name="lookup",
            parent=root,
            error=True,
            **{"input.value": "alpha confidential input", "input.mime_type": "text/plain"},
        ),
    )
    assert _ingest(k, "alpha-ingest", body).status_code == 200
    store = open_store(k.srv.store_url, readonly=True)
    try:
        steps = store.get_steps(trace)
        run = store.get_run(trace)
    finally:
        store.close()
    assert run is not None and run.project == "alpha"
    hashes = [s.input_hash for s in steps if s.input_hash]
    assert hashes
    return trace, hashes[0]


def test_no_key_unknown_key_revoked_key_get_401_health_stays_open(keyed: Keyed) -> None:
    for path in READ_ROUTES:
        r = httpx.get(keyed.url + path, headers={"Accept": "application/json"})
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.post(keyed.url + "/v1/traces", content=request(span(trace_id())), headers=JS)
    assert r.status_code == 401
    assert orjson.loads(r.content)["code"] == 16  # google.rpc UNAUTHENTICATED
    for bad in ("flk_000000000000_" + "A" * 43, "nonsense", keyed.keys["alpha-read"][:-1] + "x"):
        r = httpx.get(keyed.url + "/api/v1/runs", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, bad
    assert httpx.get(keyed.url + "/api/v1/runs", headers=keyed.auth("alpha-read")).is_success
    store = open_store(keyed.srv.store_url)
    try:
        revoke_key(store, "alpha-read")
    finally:
        store.close()
    assert (
        httpx.get(keyed.url + "/api/v1/runs", headers=keyed.auth("alpha-read")).status_code == 401
    )
    for path in ("/healthz", "/readyz"):
        assert httpx.get(keyed.url + path).status_code == 200


def test_wrong_scope_gets_403(keyed: Keyed) -> None:
    body = request(span(trace_id()))
    assert _ingest(keyed, "alpha-read", body).status_code == 403
    r = httpx.get(keyed.url + "/api/v1/runs", headers=keyed.auth("alpha-ingest"))
    assert r.status_code == 403
    for path in ("/api/v1/ingest/stats", "/audit", "/reliability", "/api/v1/reliability"):
        assert httpx.get(keyed.url + path, headers=keyed.auth("alpha-read")).status_code == 403
        assert httpx.get(keyed.url + path, headers=keyed.auth("alpha-admin")).status_code == 200
    assert _ingest(keyed, "alpha-admin", body).status_code == 200


def test_a_project_cannot_read_another_projects_run(keyed: Keyed) -> None:
    run_id, payload = _alpha_run(keyed)
    alpha, beta = keyed.auth("alpha-read"), keyed.auth("beta-read")
    paths = (
        f"/api/v1/runs/{run_id}",
        f"/api/v1/runs/{run_id[:6]}",  # by prefix
        f"/api/v1/runs/{run_id}/lineage",
        f"/api/v1/runs/{run_id}/findings",
        f"/api/v1/runs/{run_id}/attribution",
        f"/api/v1/payloads/{payload}",
        f"/runs/{run_id}",
        f"/runs/{run_id[:6]}",
        f"/runs/{run_id}/report",
    )
    for path in paths:
        assert httpx.get(keyed.url + path, headers=alpha).status_code == 200, path
        r = httpx.get(keyed.url + path, headers=beta)
        assert r.status_code == 404, path
        assert "alpha confidential" not in r.text and "alpha-flow" not in r.text
    listed = httpx.get(keyed.url + "/api/v1/runs", headers=beta).json()
    assert listed["total"] == 0 and listed["runs"] == []
    assert httpx.get(keyed.url + "/api/v1/workflows", headers=beta).json()["workflows"] == []
    assert "alpha-flow" not in httpx.get(keyed.url + "/", headers=beta).text
    mine = httpx.get(keyed.url + "/api/v1/runs", headers=alpha).json()
    assert [r["id"] for r in mine["runs"]] == [run_id]
    assert mine["runs"][0]["project"] == "alpha"


def test_an_ingest_key_cannot_write_into_another_projects_run(keyed: Keyed) -> None:
    run_id, _ = _alpha_run(keyed)
    honest = trace_id()
    body = request(
        span(run_id, "b0b0b0b0b0b0b0b0", name="alpha-flow"),  # would turn it "succeeded"
        span(run_id, name="injected", parent="a1a1a1a1a1a1a1a1"),
        span(honest, name="beta-flow"),
    )
    r = _ingest(keyed, "beta-ingest", body)
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2" and "another project" in partial["errorMessage"]
    store = open_store(keyed.srv.store_url, readonly=True)
    try:
        rec = store.get_record(run_id)
        beta_run = store.get_run(honest)
    finally:
        store.close()
    assert rec.run.project == "alpha" and rec.run.status == "failed"
    assert "injected" not in [s.name for s in rec.steps]
    assert beta_run is not None and beta_run.project == "beta"


def test_otel_exporter_sends_the_key_from_its_environment(
    keyed: Keyed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{keyed.keys['beta-ingest']}"
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-app"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=keyed.url + "/v1/traces"))
    )
    with provider.get_tracer("t").start_as_current_span("beta-agent") as root:
        tid = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    runs = httpx.get(keyed.url + "/api/v1/runs", headers=keyed.auth("beta-read")).json()["runs"]
    assert [(r["id"], r["project"]) for r in runs] == [(tid, "beta")]


def test_remote_sdk_sends_its_api_key(keyed: Keyed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flightlog.model import Batch, Run

    rid = trace_id()
    sink = RemoteSink(keyed.url, spool_dir=tmp_path / "spool", api_key=keyed.keys["beta-ingest"])
    try:
        sink.write(
            Batch(runs=[Run(id=rid, workflow="remote-flow", started_ns=1, status="succeeded")])
        )
    finally:
        sink.close()
    got = httpx.get(keyed.url + f"/api/v1/runs/{rid}", headers=keyed.auth("beta-read"))
    assert got.status_code == 200 and got.json()["run"]["project"] == "beta"
    refused = RemoteSink(keyed.url, spool_dir=tmp_path / "spool2", api_key="flk_wrong")
    try:
        refused.write(Batch(runs=[Run(id=trace_id(), workflow="x", started_ns=1)]))
    finally:
        refused.close()
    assert refused.rejected_batches == 1  # kept under spool2/rejected, not lost


def test_only_a_hash_of_each_key_is_stored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "k.db"
    out = subprocess.run(
        [sys.executable, "-m", "flightlog", "keys", "create", "ci", "--scope", "ingest",
         "--project", "p1", "--db", f"sqlite:///{db}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    secret = out.stdout.strip()
    assert secret.startswith("flk_") and len(secret) > 50
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT hash FROM api_keys").fetchall()
    assert stored == [(hashlib.sha256(secret.encode()).hexdigest(),)]
    assert secret.encode() not in db.read_bytes()
    listed = subprocess.run(
        [sys.executable, "-m", "flightlog", "keys", "list", "--db", f"sqlite:///{db}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "ci" in listed.stdout and secret not in listed.stdout


def test_non_loopback_without_keys_is_refused_unless_insecure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "flightlog", "serve", "--host", "0.0.0.0", "--port", "0",
         "--db", f"sqlite:///{tmp_path / 'open.db'}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "refusing to serve on 0.0.0.0 without API keys" in out.stderr
    assert "--insecure" in out.stderr


def test_keys_created_while_serving_lock_the_server(server) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(server.url + "/api/v1/runs").status_code == 200  # no keys: open
    store = open_store(server.store_url)
    try:
        _, secret = create_key(store, "late", "read")
    finally:
        store.close()
    assert httpx.get(server.url + "/api/v1/runs").status_code == 401
    r = httpx.get(server.url + "/api/v1/runs", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200
