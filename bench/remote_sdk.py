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

from sdk_overhead import Trial, time_otel_spans  # bench/ is the script's directory


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


def bench_otel(n: int, url: str) -> Trial:
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
    return time_otel_spans(provider, n)


def bench_flightlog(n: int, url: str, spool: Path) -> Trial:
    import flightlog

    flightlog.configure(url, spool_dir=str(spool))

    @flightlog.step(kind="tool", agent="retriever", owner="search-team")
    def search_policy(query: str, k: int, user: str) -> int:
        return k

    c0, m0 = time.process_time(), time.thread_time()
    with flightlog.run("bench"):
        t0 = time.perf_counter()
        for i in range(n):
            search_policy("water damage claim", i, "customer-17")
        t1 = time.perf_counter()
    flightlog.flush(None)
    while flightlog.stats()["sink"]["spool_pending_batches"]:
        time.sleep(0.01)
    t2 = time.perf_counter()
    c1, m1 = time.process_time(), time.thread_time()
    st = flightlog.stats()
    flightlog.shutdown()
    assert st["dropped"] == 0 and st["sink"]["spool_dropped_records"] == 0, st
    return Trial((t1 - t0) / n, (t2 - t0) / n, (c1 - c0) / n, (m1 - m0) / n)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ot: list[Trial] = []
    fl: list[Trial] = []
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_server(Path(d) / "server.db")
        try:
            for r in range(args.repeat):
                gc.collect()
                ot.append(bench_otel(args.steps, url))
                gc.collect()
                fl.append(bench_flightlog(args.steps, url, Path(d) / f"spool{r}"))
        finally:
            proc.terminate()
            proc.wait(30)

    def med(trials: list[Trial], field: str) -> float:
        return statistics.median(getattr(t, field) for t in trials)

    us = 1e6
    load = os.getloadavg()[0]
    print(
        f"steps per trial: {args.steps}, trials: {args.repeat} (medians); cpus: "
        f"{os.cpu_count()}; load average {load:.1f}"
    )
    print(f"{'(µs per step)':44}{'caller':>10}{'acked':>10}{'CPU until acked':>17}")
    for name, trials in (
        ("OpenTelemetry span (batch, OTLP/HTTP)", ot),
        ("Flightlog step (remote sink, OTLP/HTTP)", fl),
    ):
        print(
            f"{name:44}{med(trials, 'caller') * us:>10.2f}{med(trials, 'durable') * us:>10.2f}"
            f"{med(trials, 'cpu') * us:>17.2f}"
        )
    print(
        f"ratio Flightlog/OpenTelemetry: caller {med(fl, 'caller') / med(ot, 'caller'):.2f}x, "
        f"until acknowledged (durable on the server) "
        f"{med(fl, 'durable') / med(ot, 'durable'):.2f}x (wall), "
        f"{med(fl, 'cpu') / med(ot, 'cpu'):.2f}x (client CPU)"
    )


if __name__ == "__main__":
    main()
