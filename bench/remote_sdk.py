"""Per-step cost of the Flightlog SDK in remote mode versus OpenTelemetry's batch exporter,
both sending OTLP/HTTP protobuf to the same ``flightlog serve`` process, side by side.

- Flightlog: ``flightlog.configure("http://127.0.0.1:PORT")``; a ``@flightlog.step`` with three
  arguments; the background writer encodes batches as OTLP and the remote sink posts them
  (spooling to disk if the server does not acknowledge).
- OpenTelemetry: TracerProvider + BatchSpanProcessor (queue sized so nothing is dropped) +
  OTLPSpanExporter (HTTP/protobuf); a span with three attributes.

Reported per step: the caller-thread cost (the loop alone) and the cost until the server
has acknowledged everything, which it does only after committing it to its store
(loop + ``flightlog.flush()`` / ``force_flush()``). Run:
``python bench/remote_sdk.py [--steps 20000] [--repeat 3]``.
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
import time
from pathlib import Path

from sdk_overhead import time_otel_spans  # bench/ is the script's directory


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flightlog",
            "serve",
            "--port",
            str(port),
            "--db",
            f"sqlite:///{db}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("flightlog serve did not start")


def bench_otel(n: int, url: str) -> tuple[float, float]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=url + "/v1/traces"),
            max_queue_size=n + 10,
            max_export_batch_size=512,
        )
    )
    return time_otel_spans(provider, n, flush_timeout_ms=120_000)


def bench_flightlog(n: int, url: str, spool: Path) -> tuple[float, float]:
    import flightlog

    flightlog.configure(url, spool_dir=str(spool))

    @flightlog.step(kind="tool", agent="retriever", owner="search-team")
    def search_policy(query: str, k: int, user: str) -> int:
        return k

    with flightlog.run("bench"):
        t0 = time.perf_counter()
        for i in range(n):
            search_policy("water damage claim", i, "customer-17")
        t1 = time.perf_counter()
    flightlog.flush(None)
    while flightlog.stats()["sink"]["spool_pending_batches"]:
        time.sleep(0.01)
    t2 = time.perf_counter()
    st = flightlog.stats()
    flightlog.shutdown()
    assert st["dropped"] == 0 and st["sink"]["spool_dropped_records"] == 0, st
    return (t1 - t0) / n, (t2 - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    fl_loop, fl_total, ot_loop, ot_total = [], [], [], []
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_server(Path(d) / "server.db")
        try:
            for r in range(args.repeat):
                gc.collect()
                a, b = bench_otel(args.steps, url)
                ot_loop.append(a)
                ot_total.append(b)
                gc.collect()
                c, e = bench_flightlog(args.steps, url, Path(d) / f"spool{r}")
                fl_loop.append(c)
                fl_total.append(e)
        finally:
            proc.terminate()
            proc.wait(30)
    med = statistics.median
    us = 1e6
    print(f"steps per trial: {args.steps}, trials: {args.repeat} (medians); cpus: {os.cpu_count()}")
    print(f"{'':44}{'caller µs/step':>16}{'acked µs/step':>15}")
    print(
        f"{'OpenTelemetry span (batch, OTLP/HTTP)':44}{med(ot_loop) * us:>16.2f}"
        f"{med(ot_total) * us:>15.2f}"
    )
    print(
        f"{'Flightlog step (remote sink, OTLP/HTTP)':44}{med(fl_loop) * us:>16.2f}"
        f"{med(fl_total) * us:>15.2f}"
    )
    print(
        f"ratio Flightlog/OpenTelemetry: caller {med(fl_loop) / med(ot_loop):.2f}x, "
        f"until acknowledged (durable on the server) {med(fl_total) / med(ot_total):.2f}x"
    )


if __name__ == "__main__":
    main()
