"""The ingestion benchmark's Flightlog-only path works end to end (no peers, no timings).

Runs ``bench/ingest.py --only flightlog`` as a user would: it starts ``flightlog serve`` in a
subprocess, sends 1,000 spans with each client (the real OTLP/HTTP exporter, and the bodies
pre-encoded by the exporter's encoder posted over keep-alive connections) and polls the
server's SQLite file until every span is stored as a step. The test asserts the counts, never
the speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ingest.py"


@pytest.mark.slow
@pytest.mark.parametrize("client", ["exporter", "preencoded"])
def test_flightlog_only_run_stores_every_span(tmp_path: Path, client: str) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--only",
            "flightlog",
            "--spans",
            "1000",
            "--timeout",
            "120",
            "--client",
            client,
            "--senders",
            "3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    assert doc["client"] == client
    (result,) = doc["results"]
    assert result["server"] == "flightlog"
    assert result["client"] == client
    assert result["client_cpu_s"] > 0
    # the pre-encoded client encodes once, before the clock; the exporter encodes as it sends
    assert (result["encode_cpu_s"] is not None) == (client == "preencoded")
    assert result["status"] == "ok"
    assert result["spans"] == 1000
    assert result["acked"] == 1000
    assert result["failed_exports"] == 0
    assert result["stored"] == 1000
    assert result["durable_at_ack"] == 1000  # acknowledged only once durable
    assert result["peak_rss_mb"] > 0
    # Once run-end work caught up: the server's CPU, and its writer and run-end threads' share
    # (read from /api/v1/ingest/stats), all spent and within the whole.
    assert 0 < result["writer_cpu_s"] < result["settled_cpu_s"]
    assert 0 < result["pipeline_cpu_s"] < result["settled_cpu_s"]
    assert "| Flightlog" in done.stdout
    assert f"client: {client}" in done.stdout
    assert "client CPU µs/span" in done.stdout
    assert "run-end pipeline" in done.stdout
