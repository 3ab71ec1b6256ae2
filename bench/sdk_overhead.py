"""Per-step overhead of ``@flightlog.step`` versus an OpenTelemetry SDK span, side by side.

Both record the same three attributes per call:
- Flightlog: a step function with three arguments, recorded into a SQLite file (WAL, the
  default embedded store) by the background writer;
- OpenTelemetry: ``tracer.start_as_current_span`` with three ``set_attribute`` calls,
  TracerProvider + BatchSpanProcessor + an exporter that discards.

Reported per call: the caller-thread cost (the loop alone) and the cost until everything
is durable (loop + ``flush(hooks=False)`` / ``force_flush``), and separately the run-end
processing (detection) of the benchmark's one long run, which runs on its own thread. Also: store throughput (steps made durable per
second). Run: ``python bench/sdk_overhead.py [--steps 50000] [--repeat 5] [--privacy off]
[--secrets]`` (``--privacy off`` measures without scrubbing at capture; ``--secrets`` puts an
e-mail address and an API key in every step's input, so that every record is scrubbed).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def time_otel_spans(provider: Any, n: int, flush_timeout_ms: int = 30_000) -> tuple[float, float]:
    """Per-span seconds for ``n`` spans with three attributes: the loop alone, and until
    ``force_flush`` returns. Shared by the benchmarks that compare against OpenTelemetry."""
    tracer = provider.get_tracer("bench")

    def work(query: str, k: int, user: str) -> int:
        with tracer.start_as_current_span("search_policy") as span:
            span.set_attribute("query", query)
            span.set_attribute("k", k)
            span.set_attribute("user", user)
            return k

    with tracer.start_as_current_span("run"):
        t0 = time.perf_counter()
        for i in range(n):
            work("water damage claim", i, "customer-17")
        t1 = time.perf_counter()
    provider.force_flush(flush_timeout_ms)
    t2 = time.perf_counter()
    provider.shutdown()
    return (t1 - t0) / n, (t2 - t0) / n


def bench_otel(n: int) -> tuple[float, float]:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=n + 10))
    return time_otel_spans(provider, n)


def bench_flightlog(n: int, db: Path, secrets: bool = False) -> tuple[float, float, float]:
    import flightlog

    flightlog.configure(f"sqlite:///{db}")

    @flightlog.step(kind="tool", agent="retriever", owner="search-team")
    def search_policy(query: str, k: int, user: str) -> int:
        return k

    # --secrets: every step's input holds an e-mail address and an API key to scrub.
    query = (
        "water damage claim, key sk-proj-Zq8Xw7Vt6Us5Rr4Qp3Oo2Nn1"
        if secrets
        else ("water damage claim")
    )
    user = "alice@example.com" if secrets else "customer-17"
    with flightlog.run("bench"):
        t0 = time.perf_counter()
        for i in range(n):
            search_policy(query, i, user)
        t1 = time.perf_counter()
    flightlog.flush(None, hooks=False)
    t2 = time.perf_counter()
    flightlog.flush(None)  # and the run-end processing (detectors) of the one run
    t3 = time.perf_counter()
    st = flightlog.stats()
    flightlog.shutdown()
    assert st["dropped"] == 0, st
    return (t1 - t0) / n, (t2 - t0) / n, (t3 - t2)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=50_000)
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
    args = ap.parse_args()
    import os

    os.environ["FLIGHTLOG_PRIVACY"] = args.privacy
    fl_loop, fl_total, ot_loop, ot_total, fl_hooks = [], [], [], [], []
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.repeat):
            gc.collect()
            a, b = bench_otel(args.steps)
            ot_loop.append(a)
            ot_total.append(b)
            gc.collect()
            c, e, h = bench_flightlog(args.steps, Path(d) / f"bench{r}.db", args.secrets)
            fl_loop.append(c)
            fl_total.append(e)
            fl_hooks.append(h)
    med = statistics.median
    us = 1e6
    print(
        f"steps per trial: {args.steps}, trials: {args.repeat} (medians); privacy "
        f"{args.privacy}{', secrets in every input' if args.secrets else ''}"
    )
    print(f"{'':34}{'caller µs/step':>16}{'durable µs/step':>17}")
    print(
        f"{'OpenTelemetry span (batch, discard)':34}{med(ot_loop) * us:>16.2f}{med(ot_total) * us:>17.2f}"
    )
    print(
        f"{'Flightlog step (SQLite, durable)':34}{med(fl_loop) * us:>16.2f}{med(fl_total) * us:>17.2f}"
    )
    print(
        f"ratio Flightlog/OpenTelemetry: caller {med(fl_loop) / med(ot_loop):.2f}x, "
        f"until durable {med(fl_total) / med(ot_total):.2f}x"
    )
    print(f"store throughput: {1 / med(fl_total):,.0f} steps/s made durable")
    print(f"run-end processing (detectors) of the {args.steps}-step run: {med(fl_hooks):.2f} s")


if __name__ == "__main__":
    main()
