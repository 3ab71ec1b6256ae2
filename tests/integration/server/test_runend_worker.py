"""``flightlog serve`` runs the run-end pipeline in a worker process (``[server] run_end =
"process"``): ended runs get their findings, attributions and incidents through it; a worker
killed with SIGKILL mid-load is replaced and the batch it had not finished is handed over
again, with nothing lost and nothing attributed, claimed or logged twice; a SIGKILLed server
leaves no worker behind; ``run_end = "thread"`` keeps the work in the server process."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import run_cli
from tests.integration.respond.conftest import Receiver
from tests.integration.server.conftest import ServerProcess, free_port, wait_until

WORKFLOW = "claims-triage"


def _config(path: Path, receiver: Receiver) -> Path:
    path.write_text(
        f"""\
[teams.platform]
channels = ["ops-hook"]

[[owners]]
team = "platform"

[channels.ops-hook]
type = "webhook"
url = "{receiver.url("/ops")}"
timeout = "2s"
"""
    )
    return path


def _trace(n: int) -> str:
    return f"{n + 1:032x}"  # an all-zero trace id is invalid


def _failed(n: int) -> bool:
    return n % 3 == 0


def _child(
    trace: str, n: int, k: int, name: str, start: int, end: int, status: dict[str, Any]
) -> dict[str, Any]:
    kind = "RETRIEVER" if name.startswith("search") else "TOOL"
    attributes = [{"key": "openinference.span.kind", "value": {"stringValue": kind}}]
    if kind == "RETRIEVER":
        attributes.append({"key": "output.value", "value": {"stringValue": f"policy {n % 7}"}})
    return {
        "traceId": trace,
        "spanId": f"{n + 1:012x}000{k}",
        "parentSpanId": f"{n + 1:012x}0001",
        "name": name,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": attributes,
        "status": status,
    }


def _body(first: int, count: int) -> bytes:
    """``count`` traces (runs) of three spans each, numbered from ``first``; every third
    fails at its tool step."""
    spans: list[dict[str, Any]] = []
    for n in range(first, first + count):
        trace = _trace(n)
        t0 = 1_767_225_600_000_000_000 + n * 10_000_000
        err = {"code": 2, "message": "tool timed out"} if _failed(n) else {"code": 1}
        spans += [
            {
                "traceId": trace,
                "spanId": f"{n + 1:012x}0001",
                "name": WORKFLOW,
                "startTimeUnixNano": str(t0),
                "endTimeUnixNano": str(t0 + 9_000_000),
                "attributes": [
                    {"key": "openinference.span.kind", "value": {"stringValue": "AGENT"}},
                    {"key": "input.value", "value": {"stringValue": f"claim {n}"}},
                ],
                "status": err,
            },
            _child(trace, n, 2, "search_policy", t0 + 1_000_000, t0 + 3_000_000, {"code": 1}),
            _child(trace, n, 3, "price_claim", t0 + 4_000_000, t0 + 8_000_000, err),
        ]
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})


def _post(srv: ServerProcess, first: int, count: int) -> None:
    r = httpx.post(
        srv.url + "/v1/traces",
        content=_body(first, count),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 200, r.text


def _wait(pred: Any, timeout: float = 90.0) -> bool:
    return wait_until(pred, timeout, poll=0.1)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stats(srv: ServerProcess) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(srv.url + "/api/v1/ingest/stats", timeout=10).json()
    return stats


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # a table not created yet
        return []
    finally:
        conn.close()


def _processed(db: Path) -> int:
    rows = _rows(db, "SELECT count(*) FROM respond_processed")
    return int(rows[0][0]) if rows else 0


def _check_each_run_once(db: Path, runs: int) -> None:
    """Every run claimed once by the response engine; every failed run attributed, its
    attribution logged once; no finding logged twice; the ledger verifies."""
    assert _processed(db) == runs
    attributions = _rows(
        db, "SELECT run_id, count(*) FROM ledger_entries WHERE kind = 'attribution' GROUP BY 1"
    )
    failed = {_trace(n) for n in range(runs) if _failed(n)}
    assert {rid for rid, _ in attributions} == failed
    assert all(count == 1 for _, count in attributions)
    twice = _rows(
        db,
        "SELECT record_id FROM ledger_entries WHERE kind = 'finding' "
        "GROUP BY record_id HAVING count(*) > 1",
    )
    assert twice == []
    runs_with_findings = _rows(db, "SELECT count(DISTINCT run_id) FROM findings")[0][0]
    assert runs_with_findings >= len(failed)
    assert _rows(db, "SELECT count(*) FROM respond_incidents")[0][0] >= 1


@pytest.fixture
def alerting(tmp_path: Path) -> Any:
    receiver = Receiver().start()
    try:
        yield {"FLIGHTLOG_CONFIG": str(_config(tmp_path / "flightlog.toml", receiver))}
    finally:
        receiver.stop()


def _server(tmp_path: Path, env: dict[str, str]) -> ServerProcess:
    srv = ServerProcess(db=tmp_path / "server.db", port=free_port())
    srv.env = env
    return srv.start()


def test_ended_runs_get_findings_attributions_and_incidents_through_the_worker(
    tmp_path: Path, alerting: dict[str, str]
) -> None:
    srv = _server(tmp_path, alerting)
    try:
        assert srv.proc is not None
        stats = _stats(srv)
        assert stats["run_end_mode"] == "process"
        worker = stats["run_end_worker_pid"]
        assert worker in _children(srv.proc.pid)
        _post(srv, 0, 30)
        assert _wait(lambda: _processed(srv.db) == 30), _processed(srv.db)
        _check_each_run_once(srv.db, 30)
        # the worker commits its batch, then answers: the server counts its CPU on the answer
        assert _wait(lambda: _stats(srv)["pipeline_cpu_seconds"] > 0), _stats(srv)
        stats = _stats(srv)
        assert stats["run_end_worker_cpu_seconds"] >= stats["pipeline_cpu_seconds"]
        assert stats["pipeline_errors"] == 0
        assert stats["run_end_worker_restarts"] == 0
    finally:
        srv.stop()
    assert srv.log is not None and "Traceback" not in srv.log.read_text()
    assert not _alive(worker)  # stopped with the server
    assert run_cli("audit", "verify", "--db", f"sqlite:///{srv.db}").returncode == 0


def test_a_killed_worker_is_replaced_and_nothing_is_lost_or_done_twice(
    tmp_path: Path, alerting: dict[str, str]
) -> None:
    srv = _server(tmp_path, alerting)
    total, per_request = 900, 60
    try:
        killed: list[int] = []

        def kill_workers() -> None:
            # kill the worker twice while it works (its CPU time moving), then let it be
            while len(killed) < 2:
                pid = _stats(srv)["run_end_worker_pid"]
                if pid is None or pid in killed:
                    time.sleep(0.05)
                    continue
                with open(f"/proc/{pid}/stat") as f:
                    cpu0 = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
                time.sleep(0.3)
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        cpu = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
                except OSError:
                    continue
                if cpu > cpu0 and _stats(srv)["pipeline_seconds"] > 0:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        killer = threading.Thread(target=kill_workers, daemon=True)
        killer.start()
        for first in range(0, total, per_request):
            _post(srv, first, per_request)
        killer.join(120)
        assert len(killed) == 2
        assert _wait(lambda: _processed(srv.db) == total, 180), _processed(srv.db)
        stats = _stats(srv)
        assert stats["spans_stored"] == 3 * total
        assert stats["run_end_worker_restarts"] >= 2
        assert stats["run_end_worker_pid"] not in killed
        assert not any(_alive(pid) for pid in killed)
        _check_each_run_once(srv.db, total)
    finally:
        srv.stop()
    assert run_cli("audit", "verify", "--db", f"sqlite:///{srv.db}").returncode == 0


def test_a_sigkilled_server_leaves_no_worker_behind(tmp_path: Path) -> None:
    srv = _server(tmp_path, {})
    assert srv.proc is not None
    worker = _stats(srv)["run_end_worker_pid"]
    assert _alive(worker)
    # busy: a batch of ended runs in hand when the server dies
    _post(srv, 0, 300)
    srv.kill()
    assert _wait(lambda: not _alive(worker), 10)
    # idle
    srv = _server(tmp_path, {})
    worker = _stats(srv)["run_end_worker_pid"]
    srv.kill()
    assert _wait(lambda: not _alive(worker), 10)


def test_thread_mode_keeps_run_end_work_in_the_server(
    tmp_path: Path, alerting: dict[str, str]
) -> None:
    srv = _server(tmp_path, {**alerting, "FLIGHTLOG_RUN_END": "thread"})
    try:
        assert srv.proc is not None
        stats = _stats(srv)
        assert stats["run_end_mode"] == "thread"
        assert stats["run_end_worker_pid"] is None
        assert _children(srv.proc.pid) == []
        _post(srv, 0, 30)
        assert _wait(lambda: _processed(srv.db) == 30), _processed(srv.db)
        _check_each_run_once(srv.db, 30)
        assert _stats(srv)["pipeline_cpu_seconds"] > 0
    finally:
        srv.stop()


def test_the_worker_serves_a_postgresql_store(
    tmp_path: Path, pg_url: str, alerting: dict[str, str]
) -> None:
    import psycopg

    def count(sql: str) -> int:
        try:
            with psycopg.connect(pg_url) as conn:
                row = conn.execute(sql).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
        return int(row[0]) if row else 0

    srv = ServerProcess(db=tmp_path / "unused.db", port=free_port(), store=pg_url)
    srv.env = alerting
    srv.start()
    try:
        assert srv.proc is not None
        stats = _stats(srv)
        assert stats["run_end_mode"] == "process"
        assert stats["run_end_worker_pid"] in _children(srv.proc.pid)
        _post(srv, 0, 12)
        assert _wait(lambda: count("SELECT count(*) FROM respond_processed") == 12)
        attributed = "SELECT count(DISTINCT run_id) FROM forensics_attributions"
        assert count(attributed) == 4
        stats = _stats(srv)
        assert stats["pipeline_cpu_seconds"] > 0 and stats["pipeline_errors"] == 0
    finally:
        srv.stop()
    verify = run_cli("audit", "verify", "--db", pg_url, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _ignores(pid: int, signum: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        mask = next(line.split()[1] for line in f if line.startswith("SigIgn:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


def test_the_worker_ignores_a_sigterm_sent_to_the_process_group(
    tmp_path: Path, alerting: dict[str, str]
) -> None:
    """systemd stops a service with SIGTERM to its whole process group: the worker must not
    die mid-batch (the server would start another and count a restart); the server stops it."""
    srv = _server(tmp_path, alerting)
    try:
        worker = _stats(srv)["run_end_worker_pid"]
        assert _wait(lambda: _ignores(worker, signal.SIGINT), 30)  # its main() has begun
        _post(srv, 0, 60)
        os.kill(worker, signal.SIGTERM)  # what the group's SIGTERM does to the worker
        assert _wait(lambda: _processed(srv.db) == 60), _processed(srv.db)
        stats = _stats(srv)
        assert stats["run_end_worker_pid"] == worker and _alive(worker)
        assert stats["run_end_worker_restarts"] == 0 and stats["pipeline_errors"] == 0
    finally:
        srv.stop()
    assert srv.log is not None and "starting another" not in srv.log.read_text()
    assert not _alive(worker)


BROKEN_WORKER = """\
import os, sys
if "flightlog.server.runend_worker" in sys.orig_argv:  # only the worker, not the server
    sys.stderr.write("RuntimeError: the store cannot be opened here\\n")
    sys.stderr.flush()
    os._exit(3)
"""


def test_a_worker_that_cannot_start_is_restarted_with_backoff_and_reported(
    tmp_path: Path,
) -> None:
    """A worker that dies at start (here: before it can import anything) is restarted after
    a growing delay, not every second; /readyz and the stats say why (its own exit status and
    last stderr line, not the SIGKILL of its reaping); the runs of an abandoned batch are
    counted and named in the log."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BROKEN_WORKER)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    srv = _server(tmp_path, {"PYTHONPATH": path})
    try:

        def failing() -> bool:
            return httpx.get(srv.url + "/readyz", timeout=10).status_code == 503

        assert _wait(failing, 60)
        problems = httpx.get(srv.url + "/readyz", timeout=10).json()["problems"]
        assert any("run-end worker" in p and "status 3" in p for p in problems), problems
        stats = _stats(srv)
        assert "the store cannot be opened here" in stats["run_end_worker_failing"]
        assert stats["run_end_worker_restarts"] >= 3  # live, though no batch ran
        _post(srv, 0, 3)
        assert _wait(lambda: _stats(srv)["run_end_runs_abandoned"] == 3, 120)
        stats = _stats(srv)
        assert stats["pipeline_errors"] == 1 and stats["run_end_batches_abandoned"] == 1
    finally:
        srv.stop()
    assert srv.log is not None
    log = srv.log.read_text()
    assert "starting another in 1 s" in log and "starting another in 2 s" in log
    assert "status -9" not in log and "exited (status 3: RuntimeError" in log
    assert f"abandoned ({_trace(0)}, {_trace(1)}, {_trace(2)})" in log


def test_a_stuck_worker_is_killed_at_the_batch_deadline_and_the_batch_retried(
    tmp_path: Path, alerting: dict[str, str]
) -> None:
    """A worker that never answers (here: stopped, as if stuck on a lock) does not block the
    pipeline thread forever: at the batch deadline it is killed and another does the batch.
    The deadline counts from when a worker is ready, so the replacement's start (slow on a
    loaded machine, at its low priority) is not held against it: only its few runs are."""
    srv = _server(tmp_path, {**alerting, "FLIGHTLOG_RUN_END_BATCH_TIMEOUT_S": "3"})
    try:
        worker = _stats(srv)["run_end_worker_pid"]
        _post(srv, 0, 3)  # answered: the worker is ready (it said so before taking a batch)
        assert _wait(lambda: _processed(srv.db) == 3), _processed(srv.db)
        os.kill(worker, signal.SIGSTOP)
        _post(srv, 3, 6)
        assert _wait(lambda: _processed(srv.db) == 9), _processed(srv.db)
        _check_each_run_once(srv.db, 9)
        stats = _stats(srv)
        assert stats["run_end_worker_restarts"] == 1 and stats["run_end_runs_abandoned"] == 0
        assert not _alive(worker)
    finally:
        srv.stop()
    assert srv.log is not None and "no answer within 3 s: killed" in srv.log.read_text()
