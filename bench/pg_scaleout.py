"""Scale-out on PostgreSQL: one ``flightlog serve`` versus three on the same database.

The same OTLP/HTTP protobuf requests (agent-like traces of four GenAI spans, built with the
OpenTelemetry SDK and encoded by its own OTLP encoder, ``bench/_ingest_spans.py``) go to
``N`` real servers sharing one fresh PostgreSQL database, round robin, from several client
threads at once. A trace's spans are spread over neighbouring requests, so with three
servers most traces are written by two or three of them concurrently. A server answers 200
only once the spans are committed, so the last acknowledgement is the time to durable.

Printed per configuration: durable spans/s; the CPU of each server process (with its
children) per span stored, so the figure can be read for machines with more cores; the CPU
of the PostgreSQL backends serving the servers; and the **lock-wait share**: of the samples
(every 10 ms, ``pg_stat_activity``) in which a server's backend was inside a transaction,
the share in which it was waiting on a lock (``wait_event_type = 'Lock'``: advisory, row or
transaction locks); and the same share of write time: of the samples in which a backend was
inside a transaction that writes (it holds a transaction id, or waits on a lock: read-only
snapshots, such as the run-end pipeline's reads, never do either). The ledger is on
(pending entries + one integrator on PostgreSQL).
Also per configuration, summed over the servers: the CPU of the writer threads and of the
run-end worker processes per span (``/api/v1/ingest/stats``, ``/proc``), the rest of the
servers' CPU (HTTP, decode, the ledger's integrator...), and the spans per write
transaction.

Each configuration gets its own database ``flightlog_bench_<random>`` on the server named by
``--pg`` (the admin database, used only to create and drop it).

Run: ``python bench/pg_scaleout.py [--traces 10000] [--servers 1,3] [--threads 6]``
(under ``flock /tmp/flightlog-bench.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._ingest_servers import byte_compile, tree_cpu  # noqa: E402
from bench._ingest_spans import SPANS_PER_TRACE, build_spans  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SPANS_PER_REQUEST = 500

Request = tuple[bytes, list[tuple[str, str]]]  # protobuf body, (trace id, span id) pairs


def build_requests(
    traces: int, *, per_request: int = SPANS_PER_REQUEST, spread: bool = True, workers: int = 1
) -> list[Request]:
    """``traces`` traces as OTLP protobuf request bodies of ``per_request`` spans each.

    ``spread``: blocks of 250 traces are ordered by the spans' position in their trace, so
    each trace's spans land in neighbouring requests (hence, round robin, on different
    servers). Otherwise a trace's spans travel together, in the order they ended.
    ``workers``: processes that build parts of the sequence at once (``iter_requests``)."""
    return list(iter_requests(traces, per_request=per_request, spread=spread, workers=workers))


SPREAD_TRACES = 250  # traces per block whose spans are ordered by position (``spread``)


def _requests_of(spans: Sequence[Any], per_request: int, spread: bool) -> list[Request]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    ordered = list(spans)
    if spread:
        block = SPREAD_TRACES * SPANS_PER_TRACE
        ordered = []
        for start in range(0, len(spans), block):
            part = spans[start : start + block]
            ordered += [
                part[i]
                for p in range(SPANS_PER_TRACE)
                for i in range(p, len(part), SPANS_PER_TRACE)
            ]
    out = []
    for start in range(0, len(ordered), per_request):
        chunk = ordered[start : start + per_request]
        keys = [
            (f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}")
            for s in chunk
            if s.context is not None
        ]
        out.append((encode_spans(chunk).SerializeToString(), keys))
    return out


def _part(args: tuple[int, int, int, bool, str]) -> list[Request]:
    """Traces ``first .. first + count - 1`` as requests (one worker's part)."""
    first, count, per_request, spread, instance_id = args
    return _requests_of(
        build_spans(count, first=first, instance_id=instance_id), per_request, spread
    )


def iter_requests(
    traces: int, *, per_request: int = SPANS_PER_REQUEST, spread: bool = True, workers: int = 1
) -> Iterator[Request]:
    """``build_requests``'s requests, in order, as they are built. With ``workers`` > 1,
    that many processes start building at once, at the call, parts of the sequence (whole
    blocks and whole requests each: the same requests one process builds); each part is
    yielded as soon as it and those before it are done, so a caller sends the first while
    the rest are built. All parts share one resource (one ``service.instance.id``), as one
    process's spans do. Closing the iterator early stops the builders."""
    if workers <= 1:
        return iter(_requests_of(build_spans(traces), per_request, spread))
    import math
    import multiprocessing
    import uuid
    from concurrent.futures import ProcessPoolExecutor

    # A part: whole spread blocks and whole requests.
    spans = math.lcm(SPREAD_TRACES * SPANS_PER_TRACE, per_request, SPANS_PER_TRACE)
    step = spans // SPANS_PER_TRACE
    instance_id = str(uuid.uuid4())
    # spawn: the caller may have threads (a fork would copy their locks mid-use)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    futures = [
        pool.submit(_part, (first, min(step, traces - first), per_request, spread, instance_id))
        for first in range(0, traces, step)
    ]

    def parts() -> Iterator[Request]:
        try:
            for future in futures:
                yield from future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return parts()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One ``flightlog serve`` process on ``db_url``."""

    def __init__(self, db_url: str, workdir: Path, env: dict[str, str], n: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server{n}.log"
        self._terminated = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flightlog", "serve", "--port", str(self.port)]
            + ["--db", db_url, "--queue-spans", "200000"],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            cwd=workdir,  # no flightlog.toml there
        )

    def wait_ready(self, timeout_s: float = 120) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM, once: a second one would cut its shutdown short)."""
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def stop_all(servers: Sequence[Server]) -> None:
    """Stop ``servers`` at once: each is asked, then each is waited for (they shut down
    side by side instead of one after the other)."""
    for s in servers:
        s.terminate()
    for s in servers:
        s.stop()


def start_servers(db_url: str, n: int, workdir: Path, env: dict[str, str]) -> list[Server]:
    """``n`` servers on one database: the first creates the tables, the ledger and its
    signing key (``env`` names one key file for all), then the others join it."""
    servers = [Server(db_url, workdir, env, 0)]
    try:
        servers[0].wait_ready()
        servers += [Server(db_url, workdir, env, i) for i in range(1, n)]
        for s in servers[1:]:
            s.wait_ready()
    except BaseException:
        stop_all(servers)
        raise
    return servers


@dataclass
class Sent:
    """What a round-robin send did: which server acknowledged which request."""

    acked_by: dict[int, list[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    first_s: float = 0.0
    last_ack_s: float = 0.0

    def acked(self) -> int:
        return sum(len(v) for v in self.acked_by.values())


def send_round_robin(
    servers: Sequence[Server],
    requests: Iterable[Request],
    *,
    threads: int = 6,
    dead: set[int] | None = None,
    on_ack: Callable[[Sent], None] | None = None,
) -> Sent:
    """Send every request, request ``i`` to server ``i % n``; a request that a server does
    not answer with 200 (refused, reset, 429/5xx) goes to the next server, as a load
    balancer would. Servers in ``dead`` are skipped. ``on_ack`` runs after each 200.
    ``requests`` may be an iterator (``iter_requests``): each is sent once it is built."""
    import httpx

    dead = dead if dead is not None else set()
    sent = Sent(acked_by={n: [] for n in range(len(servers))})
    lock = threading.Lock()
    pending = enumerate(requests)

    def send(i: int, body: bytes, client: httpx.Client) -> None:
        for attempt in range(4 * len(servers)):
            n = (i + attempt) % len(servers)
            if n in dead and attempt < 3 * len(servers):
                continue
            try:
                r = client.post(
                    servers[n].url + "/v1/traces",
                    content=body,
                    headers={"Content-Type": "application/x-protobuf"},
                    timeout=300,
                )
            except httpx.HTTPError:
                continue  # not acknowledged: the next server gets it
            if r.status_code == 200:
                with lock:
                    sent.acked_by[n].append(i)
                    sent.last_ack_s = time.monotonic()
                if on_ack is not None:
                    on_ack(sent)
                return
            if r.status_code not in (429, 502, 503):
                sent.failures.append(f"request {i} to server {n}: {r.status_code} {r.text[:200]}")
                return
            time.sleep(0.2)
        sent.failures.append(f"request {i}: no server acknowledged it")

    def worker() -> None:
        with httpx.Client() as client:
            while True:
                with lock:
                    item = next(pending, None)
                if item is None:
                    return
                send(item[0], item[1][0], client)

    sent.first_s = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sent


# --- measuring ---------------------------------------------------------------------------


class LockSampler:
    """Samples ``pg_stat_activity`` of one database every ``interval_s``: how often a
    Flightlog backend inside a transaction is waiting on a lock; which backends served it
    (their CPU is read from /proc: the server runs on this machine)."""

    def __init__(self, db_url: str, database: str, interval_s: float = 0.01) -> None:
        self.db_url = db_url
        self.database = database
        self.interval_s = interval_s
        self.in_tx = 0
        self.in_write = 0  # samples inside a writing transaction (or waiting on a lock)
        self.waiting = 0
        self.cpu0: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.db_url, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT pid, wait_event_type, backend_xid IS NOT NULL FROM pg_stat_activity "
                    "WHERE datname = %s AND application_name = 'flightlog' "
                    "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
                    (self.database,),
                ).fetchall()
                for pid, wait, writing in rows:
                    self.in_tx += 1
                    self.waiting += wait == "Lock"
                    self.in_write += writing or wait == "Lock"
                    if pid not in self.cpu0:
                        self.cpu0[pid] = tree_cpu(pid)
                self._stop.wait(self.interval_s)

    @property
    def share(self) -> float:
        return self.waiting / self.in_tx if self.in_tx else 0.0

    @property
    def write_share(self) -> float:
        return self.waiting / self.in_write if self.in_write else 0.0

    def backend_cpu_s(self) -> float:
        """CPU the sampled backends used since first seen (those still alive)."""
        return sum(max(0.0, tree_cpu(pid) - c0) for pid, c0 in self.cpu0.items())


def server_parts(server: Server) -> tuple[float, float, int]:
    """(writer thread CPU s, run-end worker process CPU s, write transactions) of a server
    so far, from its ``/api/v1/ingest/stats`` and ``/proc``."""
    import httpx

    stats = httpx.get(server.url + "/api/v1/ingest/stats", timeout=30).json()
    pid = stats.get("run_end_worker_pid")
    worker = tree_cpu(int(pid)) if pid else 0.0
    return float(stats["write_cpu_seconds"]), worker, int(stats["transactions"])


@dataclass
class Result:
    servers: int
    spans: int
    stored: int = 0
    wall_s: float = 0.0
    server_cpu_s: list[float] = field(default_factory=list)
    # summed over the servers: writer thread CPU, run-end worker CPU, write transactions
    writer_cpu_s: float = 0.0
    worker_cpu_s: float = 0.0
    transactions: int = 0
    pg_cpu_s: float = 0.0
    lock_share: float = 0.0
    lock_write_share: float = 0.0
    db_bytes: int = 0
    load: float = 0.0
    error: str = ""

    @property
    def per_s(self) -> float:
        return self.stored / self.wall_s if self.wall_s else 0.0


def _with_db(url: str, db: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment))


def count_steps(db_url: str) -> tuple[int, int]:
    """(steps stored, size of the database in bytes)."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT (SELECT COUNT(*) FROM steps), pg_database_size(current_database())"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def measure(n: int, requests: Sequence[Request], admin_url: str, threads: int) -> Result:
    import psycopg

    spans = sum(len(k) for _, k in requests)
    result = Result(servers=n, spans=spans)
    name = f"flightlog_bench_{int(time.time())}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = _with_db(admin_url, name)
    try:
        with tempfile.TemporaryDirectory(prefix="flightlog-scaleout-") as tmp:
            env = {"FLIGHTLOG_LEDGER_KEY": str(Path(tmp) / "ledger.key")}
            servers = start_servers(db_url, n, Path(tmp), env)
            try:
                time.sleep(1.0)  # let start-up work settle
                cpu0 = [tree_cpu(s.proc.pid) for s in servers]
                parts0 = [server_parts(s) for s in servers]
                with LockSampler(db_url, name) as sampler:
                    sent = send_round_robin(servers, requests, threads=threads)
                    result.wall_s = sent.last_ack_s - sent.first_s
                    result.server_cpu_s = [
                        tree_cpu(s.proc.pid) - c for s, c in zip(servers, cpu0, strict=True)
                    ]
                    result.pg_cpu_s = sampler.backend_cpu_s()
                    for s, (w0, r0, t0) in zip(servers, parts0, strict=True):
                        w1, r1, t1 = server_parts(s)
                        result.writer_cpu_s += w1 - w0
                        result.worker_cpu_s += r1 - r0
                        result.transactions += t1 - t0
                result.lock_share = sampler.share
                result.lock_write_share = sampler.write_share
                result.load = os.getloadavg()[0]
                if sent.failures:
                    result.error = sent.failures[0]
            finally:
                stop_all(servers)
            result.stored, result.db_bytes = count_steps(db_url)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return result


def render(results: Sequence[Result]) -> str:
    lines = [
        "| servers | spans stored | wall s | durable spans/s | server CPU µs/span (each) "
        "| PostgreSQL backends CPU µs/span | lock-wait share (of write time) "
        "| database bytes/span | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        each = ", ".join(f"{c / max(r.stored, 1) * 1e6:.0f}" for c in r.server_cpu_s)
        total = sum(r.server_cpu_s) / max(r.stored, 1) * 1e6
        lines.append(
            f"| {r.servers} | {r.stored:,} of {r.spans:,} | {r.wall_s:.1f} | {r.per_s:,.0f} "
            f"| {total:.0f} ({each}) | {r.pg_cpu_s / max(r.stored, 1) * 1e6:.0f} "
            f"| {r.lock_share:.1%} ({r.lock_write_share:.1%}) "
            f"| {r.db_bytes / max(r.stored, 1):,.0f} | {r.load:.1f} |"
            + (f" error: {r.error}" if r.error else "")
        )
    lines.append("")
    lines.append(
        "| servers | writer thread µs/span | run-end worker µs/span | rest of the servers "
        "(HTTP, decode, integrator...) µs/span | write transactions | spans/transaction |"
    )
    lines.append("|---|---|---|---|---|---|")
    for r in results:
        n = max(r.stored, 1)
        rest = sum(r.server_cpu_s) - r.writer_cpu_s - r.worker_cpu_s
        lines.append(
            f"| {r.servers} | {r.writer_cpu_s / n * 1e6:.0f} | {r.worker_cpu_s / n * 1e6:.0f} "
            f"| {rest / n * 1e6:.0f} | {r.transactions:,} "
            f"| {r.stored / max(r.transactions, 1):,.0f} |"
        )
    if len(results) >= 2 and results[0].per_s:
        lines.append("")
        lines.append(
            f"{results[-1].servers} servers / {results[0].servers} server: "
            f"{results[-1].per_s / results[0].per_s:.2f}x durable spans/s"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=int, default=10_000, help="traces of 4 spans each")
    ap.add_argument("--servers", default="1,3", help="server counts to compare")
    ap.add_argument("--threads", type=int, default=6, help="client threads")
    ap.add_argument(
        "--whole-traces",
        action="store_true",
        help="send each trace's spans in one request (default: spread over neighbouring "
        "requests, so several servers write one trace)",
    )
    ap.add_argument("--pg", default=os.environ.get("FLIGHTLOG_TEST_PG", ADMIN_URL))
    args = ap.parse_args(argv)
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    byte_compile()  # as an installed package is: no module compiled at each server's start
    t0 = time.monotonic()
    requests = build_requests(args.traces)
    print(
        f"# {len(requests)} requests of up to {SPANS_PER_REQUEST} spans built in "
        f"{time.monotonic() - t0:.1f} s"
    )
    results: list[Any] = []
    for n in (int(x) for x in args.servers.split(",")):
        results.append(measure(n, requests, args.pg, args.threads))
        print(render(results[-1:]), flush=True)
    print()
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
