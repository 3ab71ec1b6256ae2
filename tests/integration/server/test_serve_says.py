"""``flightlog serve`` says what it does: "listening on" once the port is bound, a clear
message when the port is taken, one line per interval of what it received, that failed
runs alert nobody without a flightlog.toml; a damaged store makes /readyz say not ready and
the API answer 503, never 500."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
from pathlib import Path

import httpx
import orjson

from tests.conftest import run_cli
from tests.integration.server.conftest import ServerProcess, free_port, wait_until
from tests.integration.store.test_store_files import damage


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")}


def test_a_taken_port_is_a_clear_error_and_nothing_claims_to_listen(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        p = run_cli("serve", "--port", str(port), "--db", str(tmp_path / "s.db"), env=_env())
    assert p.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in p.stderr
    assert "listening on" not in p.stderr and "Traceback" not in p.stderr


def test_a_setting_with_fixed_values_names_them(tmp_path: Path) -> None:
    """[server] run_end = "fork": the error names the setting and the values it takes (it
    said only "Invalid enum value 'fork'")."""
    (tmp_path / "flightlog.toml").write_text('[server]\nrun_end = "fork"\n')
    p = run_cli("serve", "--port", "0", cwd=tmp_path, env=_env())
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert (
        "flightlog.toml line 2: server.run_end: 'fork' is not a valid value; expected one of "
        '"process", "thread"'
    ) in p.stderr
    assert "listening on" not in p.stderr
    # Set by the environment over a good file: the variable is named, not the file's line.
    (tmp_path / "flightlog.toml").write_text('[server]\nrun_end = "process"\n')
    p = run_cli("serve", "--port", "0", cwd=tmp_path, env={**_env(), ENV_RUN_END: "fork"})
    assert p.returncode == 1 and f"error: ${ENV_RUN_END}: server.run_end: 'fork'" in p.stderr
    # A bad [privacy] setting stops serve before it creates a store (it used to leave an
    # empty flightlog.db behind).
    (tmp_path / "flightlog.toml").write_text('[privacy]\naction = "shred"\n')
    p = run_cli("serve", "--port", "0", cwd=tmp_path, env=_env())
    assert p.returncode == 1 and "line 2: unknown privacy action 'shred'" in p.stderr
    assert sorted(f.name for f in tmp_path.iterdir()) == ["flightlog.toml"]


ENV_RUN_END = "FLIGHTLOG__SERVER__RUN_END"


def test_an_exporter_at_the_wrong_path_is_told_where_traces_go(tmp_path: Path) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT without /v1/traces, and metrics or logs exporters
    pointed here: the answer, and once per path the server's own output, say what to set."""
    srv = ServerProcess(db=tmp_path / "s.db", port=free_port())
    srv.start()
    try:
        proto = {"Content-Type": "application/x-protobuf"}
        root = httpx.post(srv.url + "/", content=b"x", headers=proto)
        assert root.status_code == 405
        assert (
            f"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={srv.url}/v1/traces"
            in root.json()["error"]["message"]
        )
        metrics = httpx.post(srv.url + "/v1/metrics", content=b"x", headers=proto)
        assert metrics.status_code == 404
        assert "OTEL_METRICS_EXPORTER=none" in metrics.json()["error"]["message"]
        httpx.post(srv.url + "/v1/metrics", content=b"x", headers=proto)
        opened = httpx.get(srv.url + "/v1/traces")
        assert opened.status_code == 405
        assert f"the web UI is at {srv.url}/" in opened.json()["error"]["message"]
        api = httpx.post(srv.url + "/api/v1/runs", content=b"x", headers=proto)
        assert api.status_code == 405 and "OTLP" not in api.text  # not an exporter's mistake
        assert srv.log is not None
        log = srv.log
        assert wait_until(lambda: "refused POST /v1/metrics" in log.read_text(), 30)
    finally:
        srv.stop()
    text = log.read_text(encoding="utf-8")
    assert text.count("refused POST /v1/metrics; Flightlog receives traces only") == 1
    assert "refused POST /; OTLP traces go to POST" in text


def test_serve_logs_what_it_received_and_that_nobody_is_alerted(tmp_path: Path) -> None:
    srv = ServerProcess(db=tmp_path / "new.db", port=free_port())
    srv.env = {"FLIGHTLOG_LOG_INTERVAL": "0.2"}
    srv.start()
    try:
        spans = [
            {
                "traceId": "ab" * 16,
                "spanId": "00000000000000a1",
                "name": "claims-triage",
                "startTimeUnixNano": "1000",
                "endTimeUnixNano": "2000",
                "status": {"code": 2, "message": "validator rejected the claim"},
            }
        ]
        body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
        r = httpx.post(
            srv.url + "/v1/traces", content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 200
        assert srv.log is not None
        log = srv.log

        def logged() -> str:
            return log.read_text(encoding="utf-8")

        assert wait_until(lambda: "1 failed" in logged(), 60), logged()
    finally:
        srv.stop()
    text = logged()
    assert f"listening on http://127.0.0.1:{srv.port}" in text
    assert "(a new, empty store: it did not exist)" in text
    assert "no alerting configured" in text.split("listening on", 1)[0]  # said at start
    # the request, its commit and the run's end may fall in different intervals: the
    # counts over all lines are what was received
    counts = [
        tuple(int(n) for n in m)
        for m in re.findall(r"(\d+) request\(s\), (\d+) span\(s\) stored, (\d+) rejected", text)
    ]
    assert tuple(map(sum, zip(*counts, strict=True))) == (1, 1, 0), text
    assert "1 run(s) ended, 1 failed (no alerting configured" in text


def test_a_damaged_store_is_not_ready_and_answers_503(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    run_cli("demo", "--runs", "6", "--dir", str(home), env=_env(), check=True)
    rid = run_cli("runs", "--status", "failed", "-q", cwd=home, env=_env(), check=True)
    bad = tmp_path / "bad.db"
    shutil.copy2(home / "flightlog.db", bad)
    # Damage the captured values' pages only: the server starts (what it reads at start is
    # intact), and the damage is found by its check and by requests that read values.
    with sqlite3.connect(f"file:{bad}?mode=ro", uri=True) as conn:
        pages = [
            int(r[0]) - 1  # dbstat numbers pages from 1
            for r in conn.execute("SELECT pageno FROM dbstat WHERE name = 'payloads'")
        ]
    assert pages
    for page in pages:
        damage(bad, range(page, page + 1))
    srv = ServerProcess(db=bad, port=free_port())
    srv.start()
    try:
        assert wait_until(lambda: httpx.get(srv.url + "/readyz").status_code == 503, 60)
        ready = httpx.get(srv.url + "/readyz").json()
        assert any("damaged" in p for p in ready["problems"]), ready
        statuses = set()
        for path in (
            "/api/v1/runs",
            f"/api/v1/runs/{rid.stdout.strip()}",
            f"/api/v1/runs/{rid.stdout.strip()}/lineage",
            "/",
            f"/runs/{rid.stdout.strip()}",
            "/incidents",
        ):
            statuses.add(httpx.get(srv.url + path).status_code)
        assert statuses <= {200, 503}, statuses
    finally:
        srv.stop()
    assert srv.log is not None
    text = srv.log.read_text(encoding="utf-8")
    assert "the store is damaged" in text
