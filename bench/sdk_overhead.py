"""Per-step cost of ``@flightlog.step`` versus an exported OpenTelemetry span, side by side.

Both record the same three attributes per call, in one process run, trials interleaved:

- Flightlog: a step function with three arguments, recorded into a SQLite file (WAL, the
  default embedded store, audit ledger attached) by the background writer. Durable when
  ``flightlog.flush(hooks=False)`` returns: every step committed to the store.
- OpenTelemetry: ``tracer.start_as_current_span`` with three ``set_attribute`` calls,
  TracerProvider + BatchSpanProcessor (queue sized so that it drops nothing) + the real
  OTLP/HTTP protobuf exporter (``OTLPSpanExporter``) sending to a receiver on loopback, in a
  process of its own, that parses each request, counts its spans and answers 200. Done when
  ``force_flush()`` returns: every span exported and acknowledged (the bench checks the
  receiver's count).

Reported per step (medians over the trials): the caller-thread cost (the loop alone, wall),
and the cost until durable / acknowledged, both as wall time and as CPU time of the recording
process (``time.process_time``: every thread of the process; on a loaded machine the CPU
figure is the one to read). The receiver's CPU is not counted (it stands for the collector,
as the SQLite file stands for Flightlog's). Also the run-end processing (detection) of the
benchmark's one long run, which runs afterwards on its own thread.

Run: ``python bench/sdk_overhead.py [--steps 20000] [--repeat 5] [--privacy off] [--secrets]
[--profile FILE] [--breakdown [--wal-pages 1000,10000]]``. ``--privacy off`` measures
without scrubbing at capture;
``--secrets`` puts an e-mail address and an API key in every step's input, so that every
record is scrubbed; ``--profile`` writes a cProfile of the background writer thread of one more
Flightlog trial; ``--breakdown`` also times each stage of a step alone (the caller's thread,
the writer's processing with and without the scrub, ``Store.write`` with and without the
ledger), in CPU per step; ``--wal-pages`` adds ``Store.write`` at those SQLite checkpoint
intervals (a final checkpoint counted, so no copy is left out of the figure).
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Trial:
    caller: float  # wall seconds per step, the loop alone
    durable: float  # wall seconds per step until durable / acknowledged
    cpu: float  # process CPU seconds per step until durable / acknowledged
    caller_cpu: float  # of which the caller's thread (the rest: background threads)
    extra: float = 0.0  # Flightlog: seconds of run-end processing after that


def time_otel_spans(provider: Any, n: int, flush_timeout_ms: int = 120_000) -> Trial:
    """``n`` spans with three attributes under one parent span: the loop alone, and until
    ``force_flush`` returns. Shared by the benchmarks that compare against OpenTelemetry."""
    tracer = provider.get_tracer("bench")

    def work(query: str, k: int, user: str) -> int:
        with tracer.start_as_current_span("search_policy") as span:
            span.set_attribute("query", query)
            span.set_attribute("k", k)
            span.set_attribute("user", user)
            return k

    c0, m0 = time.process_time(), time.thread_time()
    with tracer.start_as_current_span("run"):
        t0 = time.perf_counter()
        for i in range(n):
            work("water damage claim", i, "customer-17")
        t1 = time.perf_counter()
    if not provider.force_flush(flush_timeout_ms):
        raise SystemExit("OpenTelemetry force_flush timed out")
    t2 = time.perf_counter()
    c1, m1 = time.process_time(), time.thread_time()
    provider.shutdown()
    return Trial((t1 - t0) / n, (t2 - t0) / n, (c1 - c0) / n, (m1 - m0) / n)


# -- the OTLP receiver (a process of its own) --------------------------------------------------
def _receiver_main(port_file: str) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    ack = ExportTraceServiceResponse().SerializeToString()
    count = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a collector does

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
            with lock:
                count[0] += n
            self._answer(ack, "application/x-protobuf")

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                n, count[0] = count[0], 0  # read and reset
            self._answer(str(n).encode(), "text/plain")

        def _answer(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


def start_receiver(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "receiver.port"
    proc = subprocess.Popen([sys.executable, __file__, "--receiver", str(port_file)])
    for _ in range(600):
        if port_file.exists() and port_file.read_text():
            return proc, f"http://127.0.0.1:{port_file.read_text()}"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the OTLP receiver did not start")


def received(url: str) -> int:
    """Spans the receiver has acknowledged since the last call."""
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as s:
        s.sendall(b"GET /count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return int(data.split(b"\r\n\r\n", 1)[1])


def bench_otel(n: int, url: str) -> Trial:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces"), max_queue_size=n + 10)
    )
    received(url)
    trial = time_otel_spans(provider, n)
    got = received(url)
    if got != n + 1:
        raise SystemExit(f"the receiver acknowledged {got} spans, expected {n + 1}")
    return trial


# -- Flightlog ---------------------------------------------------------------------------------
def bench_flightlog(n: int, db: Path, secrets: bool = False, profile: str | None = None) -> Trial:
    import flightlog

    if profile:
        _profile_writer_thread(profile)
    flightlog.configure(f"sqlite:///{db}")

    @flightlog.step(kind="tool", agent="retriever", owner="search-team")
    def search_policy(query: str, k: int, user: str) -> int:
        return k

    # --secrets: every step's input holds an e-mail address and an API key to scrub.
    query = (
        "water damage claim, key sk-proj-Zq8Xw7Vt6Us5Rr4Qp3Oo2Nn1"
        if secrets
        else "water damage claim"
    )
    user = "alice@example.com" if secrets else "customer-17"
    c0, m0 = time.process_time(), time.thread_time()
    with flightlog.run("bench"):
        t0 = time.perf_counter()
        for i in range(n):
            search_policy(query, i, user)
        t1 = time.perf_counter()
    if not flightlog.flush(None, hooks=False):
        raise SystemExit("flightlog.flush failed")
    t2 = time.perf_counter()
    c1, m1 = time.process_time(), time.thread_time()
    flightlog.flush(None)  # and the run-end processing (detectors) of the one run
    t3 = time.perf_counter()
    st = flightlog.stats()
    flightlog.shutdown()
    if st["dropped"] or st["written"] != n + 2:
        raise SystemExit(f"not everything was recorded: {st}")
    return Trial((t1 - t0) / n, (t2 - t0) / n, (c1 - c0) / n, (m1 - m0) / n, t3 - t2)


def _profile_writer_thread(path: str) -> None:
    """Profile the next thread named ``flightlog-writer`` (the background writer) until it
    stops; call before ``flightlog.configure``."""
    import cProfile

    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        if self.name != "flightlog-writer":
            original(self)
            return
        threading.Thread.run = original  # type: ignore[method-assign]
        prof = cProfile.Profile()
        prof.enable()
        try:
            original(self)
        finally:
            prof.disable()
            prof.dump_stats(path)

    threading.Thread.run = run  # type: ignore[method-assign]


def breakdown(
    n: int, tmp: Path, secrets: bool = False, repeat: int = 3, wal_pages: list[int] | None = None
) -> None:
    """Where a step's CPU goes, each stage timed alone on the same records (process CPU,
    best of ``repeat``): the caller's thread (records captured in memory instead of
    queued), the writer's processing (payload hashing, lineage) without and with the privacy
    scrub, and ``Store.write`` of those batches into SQLite with and without the audit
    ledger."""
    import flightlog
    from flightlog.app import open_store
    from flightlog.model import Batch
    from flightlog.privacy import load
    from flightlog.sdk import state
    from flightlog.sdk.processing import BatchBuilder
    from flightlog.sdk.records import Record

    flightlog.configure(f"sqlite:///{tmp / 'breakdown.db'}")
    query = (
        "water damage claim, key sk-proj-Zq8Xw7Vt6Us5Rr4Qp3Oo2Nn1"
        if secrets
        else "water damage claim"
    )
    user = "alice@example.com" if secrets else "customer-17"

    @flightlog.step(kind="tool", agent="retriever", owner="search-team")
    def search_policy(query: str, k: int, user: str) -> int:
        return k

    class Capture:
        def __init__(self) -> None:
            self.records: list[Record] = []

        def submit(self, record: Record) -> None:
            self.records.append(record)

    def cpu(fn: Any) -> float:
        best = float("inf")
        for _ in range(repeat):
            c0 = time.process_time()
            fn()
            best = min(best, time.process_time() - c0)
        return best / n * 1e6

    captured: list[Capture] = []

    def caller() -> None:
        cap = Capture()
        token = state.writer_override.set(cap)
        try:
            with flightlog.run("bench"):
                for i in range(n):
                    search_policy(query, i, user)
        finally:
            state.writer_override.reset(token)
        captured.append(cap)

    rows = [("caller's thread (@flightlog.step, enqueue)", cpu(caller))]
    flightlog.shutdown()
    records = captured[-1].records
    scrubber = load()

    def processing(privacy: Any) -> list[Batch]:
        builder = BatchBuilder(privacy=privacy)
        return [builder.process(records[i : i + 1000]).batch for i in range(0, len(records), 1000)]

    rows.append(("writer: processing, privacy off", cpu(lambda: processing(None))))
    rows.append(("writer: processing + privacy scrub", cpu(lambda: processing(scrubber))))
    best = {"on": float("inf"), "off": float("inf")}
    for r in range(repeat):  # alternating, so that neither setting runs on a warmer machine
        for ledger in ("off", "on"):
            os.environ["FLIGHTLOG_LEDGER"] = ledger
            batches = processing(scrubber)
            store = open_store(f"sqlite:///{tmp / f'store-{ledger}-{r}.db'}")
            c0 = time.process_time()
            for b in batches:
                store.write(b)
            best[ledger] = min(best[ledger], (time.process_time() - c0) / n * 1e6)
            store.close()
    rows.append(("Store.write (SQLite, ledger on)", best["on"]))
    rows.append(("Store.write (SQLite, ledger off)", best["off"]))
    os.environ.pop("FLIGHTLOG_LEDGER", None)
    # --wal-pages: Store.write (ledger on) with each checkpoint interval, alternating, and a
    # checkpoint of what the log still holds at the end counted, so no copy is deferred.
    wal = {v: float("inf") for v in wal_pages or ()}
    for r in range(repeat if wal else 0):
        for v in wal:
            batches = processing(scrubber)
            store = open_store(f"sqlite:///{tmp / f'store-wal{v}-{r}.db'}")
            with store.read() as tx:
                tx.fetchall(f"PRAGMA wal_autocheckpoint={v}")
            c0 = time.process_time()
            for b in batches:
                store.write(b)
            store.checkpoint()  # type: ignore[attr-defined]
            wal[v] = min(wal[v], (time.process_time() - c0) / n * 1e6)
            store.close()
    for v, us in wal.items():
        rows.append((f"Store.write + final checkpoint, WAL {v} pages", us))
    print(f"CPU per step, each stage alone (best of {repeat}, {n} steps):")
    for name, us in rows:
        print(f"  {name:46}{us:>8.2f} µs")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--privacy",
        choices=("on", "off"),
        default="on",
        help="scrubbing at capture (FLIGHTLOG_PRIVACY); default on, as shipped",
    )
    ap.add_argument(
        "--secrets", action="store_true", help="seed an e-mail and an API key in every input"
    )
    ap.add_argument("--profile", help="write a cProfile of one more trial's writer thread here")
    ap.add_argument(
        "--breakdown", action="store_true", help="also time each stage of a step alone (CPU)"
    )
    ap.add_argument(
        "--wal-pages",
        help="with --breakdown: also time Store.write (ledger on) at these SQLite checkpoint "
        "intervals, comma-separated pages (e.g. 1000,10000), the final checkpoint counted",
    )
    ap.add_argument("--receiver", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.receiver:
        _receiver_main(args.receiver)
        return
    os.environ["FLIGHTLOG_PRIVACY"] = args.privacy
    load = os.getloadavg()
    ot: list[Trial] = []
    fl: list[Trial] = []
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_receiver(Path(d))
        try:
            for r in range(args.repeat):
                gc.collect()
                ot.append(bench_otel(args.steps, url))
                gc.collect()
                fl.append(bench_flightlog(args.steps, Path(d) / f"bench{r}.db", args.secrets))
            if args.profile:
                bench_flightlog(args.steps, Path(d) / "profile.db", args.secrets, args.profile)
            if args.breakdown:
                pages = [int(v) for v in args.wal_pages.split(",")] if args.wal_pages else None
                breakdown(args.steps, Path(d), args.secrets, wal_pages=pages)
        finally:
            proc.kill()
            proc.wait()
    load_after = os.getloadavg()

    def med(trials: list[Trial], field: str) -> float:
        return statistics.median(getattr(t, field) for t in trials)

    us = 1e6
    print(
        f"steps per trial: {args.steps}, trials: {args.repeat} (medians); privacy "
        f"{args.privacy}{', secrets in every input' if args.secrets else ''}; load average "
        f"{load[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print(f"{'':44}{'caller':>8}{'until durable':>15}{'CPU until durable':>19}{'of which':>10}")
    print(f"{'(µs per step)':44}{'wall':>8}{'wall':>15}{'(process)':>19}{'caller':>10}")
    rows = (
        ("OpenTelemetry span (batch, OTLP/HTTP, acked)", ot),
        ("Flightlog step (SQLite + ledger, durable)", fl),
    )
    for name, trials in rows:
        print(
            f"{name:44}{med(trials, 'caller') * us:>8.2f}{med(trials, 'durable') * us:>15.2f}"
            f"{med(trials, 'cpu') * us:>19.2f}{med(trials, 'caller_cpu') * us:>10.2f}"
        )
    print(
        "ratio Flightlog/OpenTelemetry: "
        f"caller {med(fl, 'caller') / med(ot, 'caller'):.2f}x, "
        f"until durable {med(fl, 'durable') / med(ot, 'durable'):.2f}x (wall), "
        f"{med(fl, 'cpu') / med(ot, 'cpu'):.2f}x (CPU)"
    )
    print(f"store throughput: {1 / med(fl, 'durable'):,.0f} steps/s made durable")
    print(f"run-end processing (detectors) of the {args.steps}-step run: {med(fl, 'extra'):.2f} s")


if __name__ == "__main__":
    main()
