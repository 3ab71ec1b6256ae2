"""The remote sink against a real HTTP server on loopback that misbehaves on purpose:
429/503 with Retry-After, 400, 413, and nobody listening at all."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import flightlog
from flightlog.model import Batch, Run, Step
from flightlog.otel.decode import decode
from flightlog.sdk.remote import RemoteSink


class Collector:
    """Answers each POST with the next scripted status (then 200), keeping the bodies."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.bodies: list[bytes] = []
        self.statuses: list[int] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, headers = collector.script.pop(0) if collector.script else (200, {})
                if status == 413 and len(body) < 2000:
                    status = 200
                collector.statuses.append(status)
                if status == 200:
                    collector.bodies.append(body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                msg = b"{}" if status == 200 else b'{"code": 3, "message": "scripted"}'
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def steps_received(self) -> set[str]:
        out: set[str] = set()
        for body in self.bodies:
            out |= {s.id for s in decode(body, "application/x-protobuf").batch.steps}
        return out


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.httpd.shutdown()


def _batch(n: int, run_id: str = "ab" * 16, size: int = 10) -> Batch:
    return Batch(
        runs=[Run(id=run_id, workflow="wf", started_ns=1, status="succeeded", ended_ns=9)],
        steps=[
            Step(
                run_id=run_id,
                id=f"{i + 1:016x}",
                name="s" * size,
                kind="tool",
                index=i + 1,
                started_ns=i,
            )
            for i in range(n)
        ],
    )


def _wait(pred, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def test_503_and_429_are_spooled_and_replayed_honouring_retry_after(
    collector: Collector, tmp_path: Path
) -> None:
    collector.script = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "1"}), (503, {})]
    sink = RemoteSink(collector.url, spool_dir=tmp_path)
    try:
        started = time.monotonic()
        sink.write(_batch(5))  # 503: spooled, returns at once
        assert time.monotonic() - started < 5
        assert sink.stats()["spooled_batches"] == 1
        sink.write(_batch(3, run_id="cd" * 16))  # backlog: straight to the spool, in order
        assert _wait(lambda: not sink.stats()["spool_pending_batches"])
        st = sink.stats()
        assert st["retries"] >= 2 and st["replayed_batches"] == 2
        assert st["sent_records"] == 6 + 4
    finally:
        sink.close()
    assert collector.statuses[:3] == [503, 429, 503]
    assert len(collector.steps_received()) == 5  # step ids 1..5 and 1..3 (other run) overlap
    assert not list(tmp_path.glob("*.otlp"))


def test_nobody_listening_spools_and_next_sink_replays(
    collector: Collector, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    sink = RemoteSink(dead, spool_dir=tmp_path, close_timeout=0.5)
    sink.write(_batch(4))
    sink.close()
    assert len(list(tmp_path.glob("*.otlp"))) == 1
    # The files are plain OTLP request bodies: replay them to whoever is up now.
    later = RemoteSink(collector.url, spool_dir=tmp_path)
    try:
        assert later.flush(20)
    finally:
        later.close()
    assert collector.steps_received() == {f"{i + 1:016x}" for i in range(4)}


def test_malformed_batch_is_set_aside_and_counted(collector: Collector, tmp_path: Path) -> None:
    collector.script = [(400, {})]
    sink = RemoteSink(collector.url, spool_dir=tmp_path)
    try:
        sink.write(_batch(2))  # does not raise, is not retried forever
        st = sink.stats()
        assert st["rejected_batches"] == 1 and "400" in st["last_error"]
        assert len(list((tmp_path / "rejected").glob("*.otlp"))) == 1
        sink.write(_batch(1, run_id="ef" * 16))
        assert collector.statuses == [400, 200]
    finally:
        sink.close()


def test_too_large_batch_is_split(collector: Collector, tmp_path: Path) -> None:
    collector.script = [(413, {}), (413, {}), (413, {}), (413, {})]
    sink = RemoteSink(collector.url, spool_dir=tmp_path)
    try:
        sink.write(_batch(40, size=200))
    finally:
        sink.close()
    assert 413 in collector.statuses
    assert collector.steps_received() == {f"{i + 1:016x}" for i in range(40)}


def test_spool_overflow_is_counted_in_flightlog_stats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("FLIGHTLOG_SPOOL_LIMIT_MB", "1")
    flightlog.configure(dead, spool_dir=str(tmp_path / "spool"), batch_size=1)

    @flightlog.step(kind="tool")
    def big(i: int) -> str:
        return f"{i}" + "x" * 200_000

    try:
        with flightlog.run("overflow"):
            for i in range(12):  # ~2.4 MB of outputs for a 1 MiB spool
                big(i)
        flightlog.flush(30)
        sink = flightlog.stats()["sink"]
    finally:
        flightlog.shutdown()
    assert sink["spool_dropped_batches"] > 0 and sink["spool_dropped_records"] > 0
    assert sink["spool_pending_bytes"] <= 1 << 20
    assert sink["spooled_batches"] > 0
