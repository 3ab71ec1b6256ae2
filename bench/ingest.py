"""OTLP ingestion: Flightlog vs Arize Phoenix vs MLflow, in one run, on this machine.

Each server runs in a subprocess on loopback with its own port and a fresh SQLite store in a
temporary directory. The same spans (agent-like traces of four GenAI spans) are sent to each
in batches of 512 by the same client (``--client``, printed with the results):

- ``preencoded`` (default): the request bodies are encoded once, before the clock starts, by
  the real exporter's own encoder (``opentelemetry-exporter-otlp-proto-common``
  ``encode_spans(batch)``, serialized: the bytes the exporter would send), then posted by
  ``--senders`` threads (default 4) over keep-alive HTTP/1.1 connections, as an OpenTelemetry
  Collector fanning out would: protobuf, the exporter's headers, gzip only if the exporter's
  own setting says so (off by default); 429/502/503/504 retried after ``Retry-After``. It
  costs a few µs of CPU per span, so the server's limit shows on a 2-core machine;
- ``exporter``: the real ``opentelemetry-exporter-otlp-proto-http`` exporter in this process,
  one export at a time (as OpenTelemetry's batch span processor does). Its encoding costs
  about 100 µs of CPU per span on the bench's machine (94–117 measured): on 2 cores it
  cannot send 20,000 spans/s.

Meanwhile the server's own store is polled until every span is there.

Measured per server:

- durable spans/s: spans found in the server's store / seconds from the first export to the
  moment the last of them was found there (acknowledged is not enough);
- time to ack: seconds from the first export until the last export returned;
- durable at ack: how many spans were in the store when the last export was acknowledged;
- peak RSS of the server's process tree, and its RSS when idle before the load;
- the client's CPU per span (its sending threads; for ``preencoded`` the one-off encoding is
  printed apart).

Each server gets ``--timeout`` seconds from the first export; after that the spans stored
so far are reported (the row says "timeout"). ``--peer-spans`` sends fewer spans to the
peers when their store is too slow for the budget; spans/s is always over the count used.

Peers run from their own virtual environments under ~/.cache/flightlog-bench (or
$FLIGHTLOG_BENCH_CACHE), created by ``--install``; they are never project dependencies.

    python bench/ingest.py --install                      # all three, 20,000 spans each
    python bench/ingest.py --only flightlog --spans 1000 --json out.json
    python bench/ingest.py --client exporter --only flightlog   # the exporter in-process
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ingest_client import CLIENTS, Bodies, encode, exporter_settings, post_all  # noqa: E402
from _ingest_servers import (  # noqa: E402
    BenchError,
    ServerSpec,
    ensure_venv,
    flightlog_spec,
    mlflow_spec,
    phoenix_spec,
    start,
    tree_cpu,
    tree_rss,
)
from _ingest_spans import SPANS_PER_TRACE, batches, build_spans  # noqa: E402

SERVERS = ("flightlog", "flightlog-keys", "mlflow", "phoenix")
BATCH = 512
POLL_S = 0.05


@dataclass
class Result:
    server: str
    label: str
    version: str
    spans: int
    acked: int = 0
    failed_exports: int = 0
    stored: int = 0
    ack_s: float | None = None
    durable_at_ack: int = 0
    durable_s: float | None = None
    durable_per_s: float | None = None
    ack_per_s: float | None = None
    server_cpu_s: float | None = None
    client: str = "exporter"
    senders: int = 1
    client_cpu_s: float | None = None
    encode_cpu_s: float | None = None  # preencoded: encoding the bodies, before the clock
    retries: int = 0
    idle_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    status: str = "ok"
    error: str = ""
    load_avg: float = 0.0
    runs_per_s: list[int] = field(default_factory=list)
    # Flightlog only, once its run-end work has caught up: the server's whole CPU, and the
    # CPU of its writer and run-end threads (from /api/v1/ingest/stats)
    settled_cpu_s: float | None = None
    writer_cpu_s: float | None = None
    pipeline_cpu_s: float | None = None
    # the run-end worker process's whole CPU, when the server runs the pipeline there
    run_end_worker_cpu_s: float | None = None
    # requests written and the writer's transactions (how many requests it batched per commit)
    requests: int | None = None
    transactions: int | None = None
    writer_wall_s: float | None = None  # the writer thread's time in write transactions


def _settle(spec: ServerSpec, pid: int, cpu0: float, result: Result, limit_s: float = 60.0) -> None:
    """Wait until the server's run-end work has caught up (its CPU time stops moving), then
    note its whole CPU and its threads' split."""
    if not spec.name.startswith("flightlog"):
        return
    url = f"http://127.0.0.1:{spec.port}/api/v1/ingest/stats"
    deadline = time.monotonic() + limit_s
    last = -1.0
    while time.monotonic() < deadline:
        cpu = tree_cpu(pid)
        if cpu - last < 0.02:  # under 2% of a core over the last second
            break
        last = cpu
        time.sleep(1.0)
    result.settled_cpu_s = tree_cpu(pid) - cpu0
    try:
        req = urllib.request.Request(url, headers=spec.headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            stats = json.loads(resp.read())
    except (OSError, ValueError):
        return
    result.writer_cpu_s = stats.get("write_cpu_seconds")
    result.pipeline_cpu_s = stats.get("pipeline_cpu_seconds")
    result.run_end_worker_cpu_s = stats.get("run_end_worker_cpu_seconds") or None
    result.requests = stats.get("requests")
    result.transactions = stats.get("transactions")
    result.writer_wall_s = stats.get("write_seconds")


def _send(spec: ServerSpec, spans: list, timeout: float, deadline: float, out: dict) -> None:
    """Export ``spans`` in batches of 512 with the real OTLP/HTTP exporter; record the acks."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    exporter = OTLPSpanExporter(
        endpoint=spec.otlp_url, headers=spec.headers or None, timeout=timeout
    )
    acked = failed = 0
    cpu0 = time.thread_time()
    try:
        for batch in batches(spans, BATCH):
            if time.monotonic() > deadline:
                break
            if exporter.export(batch) == SpanExportResult.SUCCESS:
                acked += len(batch)
            else:
                failed += 1
            out["acked"], out["failed"] = acked, failed
    finally:
        out["acked"], out["failed"] = acked, failed
        out["ack_t"] = time.monotonic()
        out["cpu_s"] = time.thread_time() - cpu0
        exporter.shutdown()


def _post(
    spec: ServerSpec, bodies: Bodies, senders: int, timeout: float, deadline: float, out: dict
) -> None:
    """Post the pre-encoded bodies (``_ingest_client``)."""
    headers, _ = exporter_settings(spec.otlp_url, spec.headers)
    post_all(spec.otlp_url, headers, bodies, senders, timeout, deadline, out)


def measure(
    spec: ServerSpec,
    spans: list,
    workdir: Path,
    args: argparse.Namespace,
    bodies: Bodies | None = None,
) -> Result:
    result = Result(spec.name, spec.label, spec.version, len(spans))
    result.client = args.client
    result.senders = args.senders if args.client == "preencoded" else 1
    if bodies is not None:
        result.encode_cpu_s = bodies.encode_cpu_s
    try:
        server = start(spec, workdir, startup_timeout=args.startup_timeout)
    except BenchError as exc:
        result.status, result.error = "failed to start", str(exc)
        return result
    try:
        time.sleep(1.0)  # let background start-up work settle before taking the idle figure
        result.idle_rss_mb = tree_rss(server.proc.pid) / 1e6
        server.peak_rss = 0
        server.sample_rss()
        sent: dict = {}
        cpu0 = tree_cpu(server.proc.pid)
        t0 = time.monotonic()
        deadline = t0 + args.timeout
        if bodies is not None:
            target: Any = _post
            targs: tuple = (spec, bodies, args.senders, args.export_timeout, deadline, sent)
        else:
            target, targs = _send, (spec, spans, args.export_timeout, deadline, sent)
        sender = threading.Thread(target=target, args=targs, daemon=True)
        sender.start()
        stored, last_change = 0, t0
        while True:
            now = time.monotonic()
            n = spec.count()
            if n > stored:  # counts only grow; a transient read error reads as 0
                stored, last_change = n, now
                result.server_cpu_s = tree_cpu(server.proc.pid) - cpu0
            if "ack_t" in sent and result.ack_s is None:
                result.ack_s = sent["ack_t"] - t0
                result.durable_at_ack = max(stored, spec.count())
            if not sender.is_alive() and stored >= sent.get("acked", 0) and stored > 0:
                break
            if not sender.is_alive() and sent.get("acked", 0) == 0:
                break
            if now > deadline:
                result.status = f"timeout {args.timeout:.0f} s"
                break
            if server.proc.poll() is not None:
                result.status = f"server exited ({server.proc.returncode})"
                result.error = server.log_tail()
                break
            time.sleep(POLL_S)
        sender.join(timeout=args.export_timeout + 5)
        result.load_avg = os.getloadavg()[0]
        _settle(spec, server.proc.pid, cpu0, result)
        result.client_cpu_s = sent.get("cpu_s")
        result.acked = sent.get("acked", 0)
        result.failed_exports = sent.get("failed", 0)
        result.retries = sent.get("retries", 0)
        result.stored = stored
        result.durable_s = last_change - t0 if stored else None
        if stored and result.durable_s:
            result.durable_per_s = stored / result.durable_s
        if result.ack_s:
            result.ack_per_s = result.acked / result.ack_s
        if result.failed_exports and result.status == "ok":
            result.status = f"{result.failed_exports} exports failed"
        if result.stored < result.spans and result.status == "ok":
            result.status = f"only {result.stored} of {result.spans} stored"
    finally:
        server.stop()
        result.peak_rss_mb = server.peak_rss / 1e6
    return result


def _measure_once(
    name: str,
    workdir: Path,
    all_spans: list,
    n_traces: int,
    n_peer_traces: int,
    versions: dict[str, str],
    args: argparse.Namespace,
) -> Result:
    workdir.mkdir()
    if name in ("flightlog", "flightlog-keys"):
        spec = flightlog_spec(workdir, api_key=name == "flightlog-keys")
        if args.profile:
            profile_dir = Path(args.profile).resolve()
            profile_dir.mkdir(parents=True, exist_ok=True)
            spec.command = [
                shutil.which("py-spy") or "py-spy",
                "record",
                "--format",
                "raw",
                "--rate",
                "100",
                "--threads",
                "-o",
                str(profile_dir / f"{workdir.name}.txt"),
                "--",
                *spec.command,
            ]
            spec.stop_signal = signal.SIGINT  # py-spy writes its profile on Ctrl-C
        spans = all_spans[: n_traces * SPANS_PER_TRACE]
    else:
        make = phoenix_spec if name == "phoenix" else mlflow_spec
        spec = make(workdir, versions[name])
        spans = all_spans[: n_peer_traces * SPANS_PER_TRACE]
    bodies = None
    if args.client == "preencoded":
        bodies = _encoded.get(len(spans))
        if bodies is None:
            _, compression = exporter_settings(spec.otlp_url, spec.headers)
            bodies = _encoded[len(spans)] = encode(batches(spans, BATCH), compression)
    print(
        f"{spec.label}: sending {len(spans):,} spans ({_client_text(args)}) ...",
        file=sys.stderr,
        flush=True,
    )
    r = measure(spec, spans, workdir, args, bodies)
    print(
        f"{spec.label}: {r.stored:,} stored, "
        f"{_fmt(r.durable_per_s, ',.0f')} durable spans/s, {r.status} "
        f"(load average {r.load_avg:.1f})",
        file=sys.stderr,
        flush=True,
    )
    if r.error:
        print(r.error, file=sys.stderr)
    if name == "flightlog" and args.profile:
        from _profile import summarize

        time.sleep(1.0)  # py-spy writes its file after the server exits
        raw = Path(args.profile) / f"{workdir.name}.txt"
        summary = summarize(raw) if raw.exists() else f"no profile at {raw}"
        (Path(args.profile) / f"{workdir.name}-summary.txt").write_text(summary + "\n")
        print(summary, file=sys.stderr)
    return r


_encoded: dict[int, Bodies] = {}  # pre-encoded requests by span count, shared by the servers


def _client_text(args: argparse.Namespace) -> str:
    if args.client == "preencoded":
        return (
            f"client: preencoded, bodies encoded once by the exporter's encoder, "
            f"{args.senders} keep-alive senders"
        )
    return "client: exporter, the OTLP/HTTP exporter in-process, one export at a time"


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def render(results: list[Result]) -> str:
    head = (
        "server",
        "version",
        "spans",
        "stored",
        "durable/s",
        "durable s",
        "ack s",
        "stored@ack",
        "idle RSS MB",
        "peak RSS MB",
        "server CPU µs/span",
        "client CPU µs/span",
        "load avg",
        "durable/s of each run",
        "status",
    )
    rows = [head]
    for r in results:
        rows.append(
            (
                r.label,
                r.version,
                f"{r.spans:,}",
                f"{r.stored:,}",
                _fmt(r.durable_per_s, ",.0f"),
                _fmt(r.durable_s, ".2f"),
                _fmt(r.ack_s, ".2f"),
                f"{r.durable_at_ack:,}",
                f"{r.idle_rss_mb:.0f}",
                f"{r.peak_rss_mb:.0f}",
                _fmt(r.server_cpu_s and r.server_cpu_s * 1e6 / max(r.stored, 1), ".0f"),
                _fmt(r.client_cpu_s and r.client_cpu_s * 1e6 / max(r.acked, 1), ".0f"),
                f"{r.load_avg:.1f}",
                ", ".join(f"{v:,}" for v in r.runs_per_s),
                r.status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in results:
        if r.settled_cpu_s is None or not r.stored:
            continue
        us = 1e6 / r.stored
        split = ""
        if r.writer_cpu_s is not None and r.pipeline_cpu_s is not None:
            if r.run_end_worker_cpu_s:  # the pipeline in a worker process: count all of it
                rest = r.settled_cpu_s - r.writer_cpu_s - r.run_end_worker_cpu_s
                run_end = (
                    f"run-end worker process {r.run_end_worker_cpu_s * us:.0f} "
                    f"(its run-end pipeline {r.pipeline_cpu_s * us:.0f})"
                )
            else:
                rest = r.settled_cpu_s - r.writer_cpu_s - r.pipeline_cpu_s
                run_end = f"run-end pipeline {r.pipeline_cpu_s * us:.0f}"
            split = (
                f": writer {r.writer_cpu_s * us:.0f}, {run_end},"
                f" HTTP, decode and the rest {rest * us:.0f}"
            )
        if r.requests and r.transactions:
            split += (
                f"; {r.requests:,} requests in {r.transactions:,} write transactions"
                f" ({r.requests / r.transactions:.2f} per commit)"
            )
        if r.writer_wall_s and r.durable_s:
            split += (
                f"; writer busy {r.writer_wall_s:.2f} s of {r.durable_s:.2f} s"
                f" ({r.writer_wall_s / r.durable_s:.0%})"
            )
        lines.append(
            f"{r.label}: server CPU µs/span once run-end work caught up {r.settled_cpu_s * us:.0f}"
            + split
        )
    for r in results:
        if r.encode_cpu_s is not None and r.spans:
            lines.append(
                f"{r.label}: client preencoded with {r.senders} senders, {r.retries} retries; "
                f"encoding the bodies once (before the clock) {r.encode_cpu_s * 1e6 / r.spans:.0f}"
                " µs/span"
            )
            break
    fl = next((r for r in results if r.server == "flightlog" and r.durable_per_s), None)
    if fl:
        lines.append("")
        for r in results:
            if r is fl or not r.durable_per_s:
                continue
            ack = ""
            if fl.ack_per_s and r.ack_per_s:
                ack = f"; acknowledged spans/s {fl.ack_per_s / r.ack_per_s:.1f}x"
            lines.append(
                f"Flightlog / {r.label}: durable spans/s {fl.durable_per_s / r.durable_per_s:.1f}x"
                f"{ack}; peak RSS {fl.peak_rss_mb / r.peak_rss_mb:.2f}x"
            )
    return "\n".join(lines)


def machine() -> str:
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--spans",
        type=int,
        default=20_000,
        help="spans to send to each server, rounded up to whole traces of 4 (default 20000)",
    )
    p.add_argument(
        "--peer-spans",
        type=int,
        default=None,
        help="spans for Phoenix and MLflow if fewer than --spans (default: --spans)",
    )
    p.add_argument(
        "--only",
        default=",".join(SERVERS),
        help="comma-separated subset of flightlog,flightlog-keys (with an API key),mlflow,"
        "phoenix (default: all)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds each server gets from the first export; then report what is stored",
    )
    p.add_argument(
        "--startup-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for a server to answer its health check",
    )
    p.add_argument(
        "--export-timeout",
        type=float,
        default=60.0,
        help="the exporter's per-export timeout, retries included; for the preencoded "
        "client, each request's socket timeout",
    )
    p.add_argument(
        "--install",
        action="store_true",
        help="create the peers' virtual environments under the cache dir if missing",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each server this many times (fresh store each time) and report the "
        "median run by durable spans/s",
    )
    p.add_argument(
        "--client",
        choices=CLIENTS,
        default="preencoded",
        help="preencoded: bodies encoded once by the exporter's encoder, posted by --senders "
        "keep-alive connections (default); exporter: the OTLP/HTTP exporter in-process",
    )
    p.add_argument(
        "--senders",
        type=int,
        default=4,
        help="concurrent keep-alive connections of the preencoded client (default 4)",
    )
    p.add_argument("--json", dest="json_path", help="also write the results as JSON to this file")
    p.add_argument(
        "--profile",
        metavar="DIR",
        help="run the Flightlog server under py-spy (pip install py-spy) and write its "
        "profile and a summary of where the time goes to DIR",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary stores and logs")
    args = p.parse_args(argv)

    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SERVERS))
    if unknown:
        p.error(f"unknown server(s) {', '.join(unknown)}; expected some of {', '.join(SERVERS)}")
    order = [s for s in SERVERS if s in only]

    versions: dict[str, str] = {}
    for peer in order:
        if not peer.startswith("flightlog"):
            try:
                versions[peer] = ensure_venv(peer, install=args.install)
            except BenchError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    n_traces = -(-args.spans // SPANS_PER_TRACE)
    n_peer_traces = -(-(args.peer_spans or args.spans) // SPANS_PER_TRACE)
    t = time.perf_counter()
    all_spans = build_spans(max(n_traces, n_peer_traces))
    print(
        f"built {len(all_spans):,} spans in {time.perf_counter() - t:.1f} s; machine: {machine()}",
        file=sys.stderr,
        flush=True,
    )

    results: list[Result] = []
    root = Path(tempfile.mkdtemp(prefix="flightlog-ingest-bench-"))
    try:
        for name in order:
            runs = [
                _measure_once(
                    name,
                    root / f"{name}-{k + 1}",
                    all_spans,
                    n_traces,
                    n_peer_traces,
                    versions,
                    args,
                )
                for k in range(args.repeat)
            ]
            ok = [r for r in runs if r.status == "ok"] or runs
            best = sorted(ok, key=lambda r: r.durable_per_s or 0)[(len(ok) - 1) // 2]
            best.runs_per_s = [round(r.durable_per_s or 0) for r in runs]
            if len(ok) < len(runs):
                best.status = f"{len(runs) - len(ok)} of {len(runs)} runs not ok"
            results.append(best)
    finally:
        if args.keep:
            print(f"stores and logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    print(f"\nOTLP/HTTP ingestion, batches of {BATCH}, durable = found in the server's store")
    print(_client_text(args))
    print(f"machine: {machine()}\n")
    print(render(results))
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "batch": BATCH,
                    "client": args.client,
                    "senders": args.senders,
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    return 0 if all(r.status == "ok" for r in results) else 2


if __name__ == "__main__":
    sys.exit(main())
