"""``GET /api/v1/audit/records/{record}`` against a real ``flightlog serve`` on loopback:
integrated records come with a proof that verifies offline, pending ones (PostgreSQL with the
integrator held off) answer 202 with Retry-After until integrated, unknown records 404, the
ledger off 409, and a key never learns about another project's records."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson

from flightlog.access.keys import create_key
from flightlog.app import open_store
from flightlog.ledger.note import Verifier
from flightlog.ledger.proof import verify_tlog_proof
from tests.conftest import run_cli
from tests.integration.server.conftest import ServerProcess
from tests.security.otlp import request, span, trace_id

JS = {"Content-Type": "application/json"}
ROUTE = "/api/v1/audit/records/"


def _ingest(srv: ServerProcess, headers: dict[str, str] | None = None) -> str:
    """One run (a root span and a child) through OTLP; returns its id (the trace id)."""
    trace, root = trace_id(), "a1a1a1a1a1a1a1a1"
    body = request(span(trace, root, name="flow"), span(trace, name="lookup", parent=root))
    r = httpx.post(srv.url + "/v1/traces", content=body, headers=JS | (headers or {}), timeout=30)
    assert r.status_code == 200, r.text
    return trace


def _get(srv: ServerProcess, record: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(srv.url + ROUTE + record, headers=headers or {}, timeout=30)


def _integrated(srv: ServerProcess, record: str, **kw: dict[str, str]) -> dict[str, object]:
    """The record's state once integrated: at once on SQLite (acknowledged = integrated);
    on PostgreSQL, polled while it answers 202 (pending)."""
    deadline = time.monotonic() + 60
    while (r := _get(srv, record, **kw)).status_code == 202:
        assert time.monotonic() < deadline, r.text
        time.sleep(float(r.headers["Retry-After"]) / 10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _verifier_key(store_url: str) -> str:
    return run_cli("audit", "key", "--db", store_url, check=True).stdout.strip()


def _verifies_offline(tmp_path: Path, store_url: str, body: dict[str, object]) -> None:
    key = _verifier_key(store_url)
    proof = str(body["proof"])
    p = verify_tlog_proof(proof, Verifier.parse(key))
    assert p.index == body["index"] and p.checkpoint.size == body["checkpoint_size"]
    f = tmp_path / "record.tlog-proof"
    f.write_text(proof)
    out = orjson.loads(run_cli("audit", "verify-bundle", str(f), "--key", key, "--json").stdout)
    assert out["ok"] is True and out["index"] == body["index"]


def test_integrated_record_has_a_proof_that_verifies_offline(
    server: ServerProcess, tmp_path: Path
) -> None:
    run_id = _ingest(server)
    body = _integrated(server, run_id)
    assert body["state"] == "integrated" and body["run_id"] == run_id
    assert isinstance(body["index"], int)
    _verifies_offline(tmp_path, server.store_url, body)
    # the same record by prefix and by its leaf index
    assert _get(server, run_id[:12]).json()["index"] == body["index"]
    by_index = _get(server, f"%23{body['index']}")
    assert by_index.status_code == 200 and by_index.json()["run_id"] == run_id
    # a step's record id contains a slash
    steps = _get(server, f"{run_id}/a1a1a1a1a1a1a1a1")
    assert steps.status_code == 200, steps.text
    assert steps.json()["state"] == "integrated"


def test_unknown_record_is_404(server: ServerProcess) -> None:
    _integrated(server, _ingest(server))
    for record in ("f" * 32, "no-such-step", "%23999999", "%23" + "9" * 30):
        r = _get(server, record)
        assert r.status_code == 404, (record, r.text)
        assert "no ledger entry for" in r.json()["error"]["message"]


def test_ledger_off_says_so(server_factory: ServerProcess) -> None:
    server_factory.env = {"FLIGHTLOG_LEDGER": "off"}
    srv = server_factory.start()
    run_id = _ingest(srv)
    r = _get(srv, run_id)
    assert r.status_code == 409
    assert "audit ledger is off" in r.json()["error"]["message"]


def test_a_key_learns_nothing_about_another_projects_records(
    server_factory: ServerProcess,
) -> None:
    store = open_store(server_factory.store_url)
    keys = {}
    try:
        for project in ("alpha", "beta"):
            for scope in ("ingest", "read", "admin"):
                keys[f"{project}-{scope}"] = create_key(
                    store, f"{project}-{scope}", scope, project
                )[1]
    finally:
        store.close()
    srv = server_factory.start()

    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[name]}"}

    alpha_run = _ingest(srv, auth("alpha-ingest"))
    body = _integrated(srv, alpha_run, headers=auth("alpha-read"))
    assert body["run_id"] == alpha_run
    assert _get(srv, alpha_run).status_code == 401  # no key
    assert _get(srv, alpha_run, auth("alpha-ingest")).status_code == 403  # no read scope
    unknown = _get(srv, "e" * 32, auth("beta-read"))
    assert unknown.status_code == 404
    for record in (
        alpha_run,
        alpha_run[:10],
        f"%23{body['index']}",
        f"{alpha_run}/a1a1a1a1a1a1a1a1",
    ):
        r = _get(srv, record, auth("beta-read"))
        assert r.status_code == 404, (record, r.text)
        # indistinguishable from a record that does not exist
        assert r.json()["error"]["message"] == unknown.json()["error"]["message"].replace(
            "e" * 32, record.replace("%23", "#")
        )
        assert alpha_run not in r.text or record.startswith(alpha_run)
    # an entry of no run (the first key's creation, leaf #0) is server-wide: admin only
    assert _get(srv, "%230", auth("alpha-read")).status_code == 404
    server_wide = _get(srv, "%230", auth("alpha-admin"))
    assert server_wide.status_code == 200, server_wide.text
    assert server_wide.json()["run_id"] is None and server_wide.json()["index"] == 0
    # beta's own runs stay visible to beta
    beta_run = _ingest(srv, auth("beta-ingest"))
    assert _integrated(srv, beta_run, headers=auth("beta-read"))["run_id"] == beta_run


def test_pending_record_is_202_then_200_once_integrated(
    server_factory: ServerProcess, tmp_path: Path, pg_url: str
) -> None:
    from tests.integration.ledger.test_ledger_sequencing import _hold_integrator_role

    url = pg_url
    open_store(url).close()  # create the schema (and the ledger's tables)
    role = _hold_integrator_role(url)  # the server cannot integrate: entries stay pending
    try:
        server_factory.store = url
        srv = server_factory.start()
        run_id = _ingest(srv)  # acknowledged: durable, so the route knows it at once
        r = _get(srv, run_id)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["state"] == "pending" and body["run_id"] == run_id
        assert int(r.headers["Retry-After"]) >= 1
        assert "not provable yet" in body["message"]
    finally:
        role.release()
    body = _integrated(srv, run_id)  # the server's integrator takes the role over
    assert body["state"] == "integrated"
    _verifies_offline(tmp_path, url, body)
