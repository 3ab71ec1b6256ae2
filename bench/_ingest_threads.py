"""Instructions and CPU per span of a real ``flightlog serve``, thread by thread.

    python bench/_ingest_threads.py [--traces 1000] [--src SRC] [--port 18431] [--empty 0]

Starts ``flightlog serve`` on a fresh SQLite store (the source tree ``--src`` first on its
``PYTHONPATH``, this tree's by default), posts the ingestion bench's spans in requests of
512 (protobuf, the exporter's encoder, one keep-alive connection, each answered once stored),
and counts with ``perf stat --per-thread`` the user-space instructions and the CPU time of
each of the server's threads, named by ``py-spy dump``: the event loop (``main``: HTTP,
Starlette, the handler), the decoding threads (``anyio worker``: parse, decode, scrub), the
writer (``flightlog-ingest``). Instructions hardly depend on the machine's load, so two
trees can be compared on a busy machine; CPU time does. ``--empty N`` also posts N requests
with an empty body first and prints what one costs (the HTTP layers alone).

Needs ``perf`` (``perf_event_paranoid`` at 2 or less) and ``py-spy``. Linux only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ingest_decode import INSTANCE_ID  # noqa: E402
from _ingest_spans import batches, build_spans  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _count(pid: int, action: object) -> dict[str, tuple[float, float]]:
    """(instructions, CPU seconds) per thread name while ``action()`` runs."""
    perf = subprocess.Popen(
        ["perf", "stat", "--per-thread", "-x", ",", "-e", "instructions:u,task-clock",
         "-p", str(pid)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.5)
    action()  # type: ignore[operator]
    time.sleep(0.5)
    perf.send_signal(signal.SIGINT)
    out = perf.communicate()[1]
    dump = subprocess.run(
        [str(Path(sys.executable).with_name("py-spy")), "dump", "--pid", str(pid)],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    names = {int(m[1]): m[2] for m in re.finditer(r'Thread (\d+) \([^)]*\): "([^"]+)"', dump)}
    totals: dict[str, list[float]] = {}
    for line in out.splitlines():
        parts = line.split(",")
        if len(parts) < 4 or "-" not in parts[0]:
            continue
        try:
            value = float(parts[1])
        except ValueError:
            continue
        tid = int(parts[0].rsplit("-", 1)[1])
        name = "main" if tid == pid else names.get(tid, "other")
        name = re.sub(r"AnyIO worker thread.*", "anyio worker", name)
        entry = totals.setdefault(name, [0.0, 0.0])
        if "instructions" in parts[3]:
            entry[0] += value
        elif "task-clock" in parts[3]:
            entry[1] += value / 1e3  # msec -> s
    return {k: (v[0], v[1]) for k, v in totals.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traces", type=int, default=1000, help="traces of 4 spans (default 1000)")
    p.add_argument("--src", default=str(ROOT / "src"), help="source tree of the server")
    p.add_argument("--port", type=int, default=18431)
    p.add_argument("--empty", type=int, default=0, help="empty requests to measure first")
    args = p.parse_args(argv)
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans = build_spans(args.traces, instance_id=INSTANCE_ID)
    bodies = [encode_spans(b).SerializePartialToString() for b in batches(spans, 512)]
    warm = build_spans(256, base_ns=1_700_000_000_000_000_000, instance_id=INSTANCE_ID)
    warm_bodies = [encode_spans(b).SerializePartialToString() for b in batches(warm, 512)]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=args.src)
        server = subprocess.Popen(
            [sys.executable, "-m", "flightlog", "serve", "--port", str(args.port),
             "--db", f"sqlite:///{tmp}/bench.db"],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(600):
                try:
                    probe = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
                    probe.request("GET", "/healthz")
                    probe.getresponse().read()
                    break
                except OSError:
                    time.sleep(0.1)
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)

            def post(body: bytes) -> None:
                conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    raise SystemExit(f"POST /v1/traces answered {r.status}")

            for body in warm_bodies:
                post(body)
            if args.empty:
                counts = _count(server.pid, lambda: [post(b"") for _ in range(args.empty)])
                main_i, main_s = counts.get("main", (0.0, 0.0))
                all_i = sum(i for i, _ in counts.values())
                all_s = sum(s for _, s in counts.values())
                print(
                    f"empty request: event loop {main_i / args.empty:,.0f} instructions, "
                    f"{main_s * 1e6 / args.empty:.0f} µs CPU; whole server "
                    f"{all_i / args.empty:,.0f} instructions, {all_s * 1e6 / args.empty:.0f} µs"
                )
            started = time.perf_counter()
            counts = _count(server.pid, lambda: [post(b) for b in bodies])
            elapsed = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait()
    n = len(spans)
    print(f"{n:,} spans in {len(bodies)} requests of 512, {elapsed:.1f} s; per span, by thread:")
    for name, (instr, cpu) in sorted(counts.items(), key=lambda kv: -kv[1][0]):
        if instr / n >= 500:
            print(f"  {name:18s} {instr / n:10,.0f} instructions  {cpu * 1e6 / n:7.1f} µs CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
