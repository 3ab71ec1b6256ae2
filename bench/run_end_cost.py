"""Run-end work per ended run as the store grows (issue: run-end cost must not grow with N).

    python bench/run_end_cost.py [SIZES...]       # default: 1000 100000 (the issue's sizes)
    python bench/run_end_cost.py --replay STORE.db [RUNS]
    python bench/run_end_cost.py --ingest [TRACES] [--rounds N] [--against OTHER/src]
    python bench/run_end_cost.py --instructions [TRACES] [--against OTHER/src]


Fills a SQLite store (ledger off) with runs of one workflow (3 steps, one in ten failed),
then ends 24 more runs (two failed for one success) through ``flightlog.pipeline.runs_ended``
and reports, per ended run, the median SQLite virtual-machine instructions (a progress
handler on the store's connection: a count, independent of machine load), the median CPU
time of the process (less dependent on the load) and the median wall time (which is not).
The first runs after each bulk fill are not counted: they rebuild the baselines the fill
made stale.

``--replay`` copies a store (one kept by ``bench/ingest.py --keep``, say), and ends its runs
again through ``runs_ended``, oldest first, 20 at a time as the server's pipeline thread
takes them, with no cached history at the start: the CPU per run end for that workload.

``--ingest`` measures the run-end CPU of ``bench/ingest.py``'s workload (traces of four GenAI
spans, all successful): the traces (default 1,200) are decoded as the server decodes them
and stored once (ledger on); then, in a fresh process per round, a copy of that store has
its first 200 runs ended (not counted: they build the baselines), and the rest ended 100 at
a time through ``runs_ended`` (what the server's pipeline does), timing the process CPU of
each batch. Printed: the median and the lowest batch CPU per run and per span (the lowest
is the least disturbed by other processes on a loaded machine), the median over rounds.
With ``--against OTHER/src`` each round also runs that source tree's pipeline (a checkout
of main before a change, say), alternating, so both see the same machine load.

``--instructions`` counts instead of timing (valgrind must be installed): the same store, its
first 200 runs ended, then 0 and then ``TRACES - 200`` more ended 100 at a time, each in a
process under ``valgrind --tool=cachegrind --cache-sim=no``; the difference in instructions
executed, per run end, does not depend on the machine's load. The cyclic garbage collector
is off while runs end, as in the server's run-end worker.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# ``--ingest`` runs each round in a child process that loads the tree it is given.
_SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, os.environ.get("FLIGHTLOG_BENCH_SRC") or _SRC)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
INGEST = sys.argv[1:2] in (
    ["--ingest"],
    ["--ingest-child"],
    ["--instructions"],
    ["--instructions-child"],
)
os.environ["FLIGHTLOG_LEDGER"] = "on" if INGEST else "off"  # the server's default, for --ingest

from tests.integration.test_run_end_cost import _fill, _run  # noqa: E402

# SQLite VM instructions per progress-handler call: 1 counts them exactly (as the test does)
UNIT = 1

from flightlog import pipeline  # noqa: E402
from flightlog.app import open_store  # noqa: E402


def measure(store: object, first: int, n: int = 24) -> tuple[float, float, float]:
    conn = store._connection()  # type: ignore[attr-defined]
    work: list[int] = []
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(first, first + n):
        store.write(_run(i, failed=i % 3 != 0))  # type: ignore[attr-defined]
        calls = [0]

        def count(calls: list[int] = calls) -> int:
            calls[0] += 1
            return 0

        conn.set_progress_handler(count, UNIT)
        t, c = time.perf_counter(), time.process_time()
        pipeline.runs_ended(store, [f"{i:032x}"])
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        conn.set_progress_handler(None, 0)
        work.append(calls[0] * UNIT)
    return statistics.median(work[3:]), statistics.median(wall[3:]), statistics.median(cpu[3:])


def replay(path: str, limit: int) -> None:
    import shutil

    from flightlog.store.base import RunQuery

    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        shutil.copy(path, f"{d}/replay.db")
        store = open_store(f"sqlite:///{d}/replay.db")
        runs = sorted(store.list_runs(RunQuery(limit=10**6)), key=lambda r: r.started_ns)
        ids = [r.id for r in runs][:limit]
        cpu = time.process_time()
        for k in range(0, len(ids), 20):
            pipeline.runs_ended(store, ids[k : k + 20])
        cpu = time.process_time() - cpu
        store.close()
    print(
        f"{len(ids)} runs ended again: {cpu * 1000 / max(len(ids), 1):.2f} ms CPU per run end; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


INGEST_WARM = 200  # runs ended first to build the baselines (not counted)
SPANS_PER_TRACE = 4
INGEST_BATCH = 100


def _ingest_store(path: str, traces: int) -> None:
    """``traces`` traces of bench/ingest.py's workload, decoded as the server does, stored."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _ingest_spans import batches, build_spans
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from flightlog.otel.decode import parse_request
    from flightlog.server.screen import decode_parsed

    store = open_store(f"sqlite:///{path}")
    for part in batches(build_spans(traces), 512):
        body = encode_spans(part).SerializeToString()
        result = decode_parsed(parse_request(body, "application/x-protobuf"))
        store.write(result.batch, reorder=result.inferred_runs)
    store.close()


def _ingest_measure(path: str) -> None:
    """(child) End a copy of the store's runs; print each counted batch's CPU per run."""
    import json
    import shutil

    from flightlog.store.base import RunQuery

    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)  # no flightlog.toml: alerting off
        shutil.copy(path, f"{d}/run.db")
        store = open_store(f"sqlite:///{d}/run.db")
        runs = sorted(store.list_runs(RunQuery(limit=10**7)), key=lambda r: r.started_ns)
        ids = [r.id for r in runs]
        pipeline.runs_ended(store, ids[:INGEST_WARM])
        per_run = []
        for k in range(INGEST_WARM, len(ids), INGEST_BATCH):
            part = ids[k : k + INGEST_BATCH]
            c = time.process_time()
            pipeline.runs_ended(store, part)
            per_run.append((time.process_time() - c) / len(part))
        store.close()
    print(json.dumps(per_run))


def _instructions_child(path: str, count: int) -> None:
    """(child, under valgrind) End the first INGEST_WARM runs, then ``count`` more."""
    import gc
    import shutil

    import flightlog.detect.builtin
    import flightlog.forensics.attribution
    import flightlog.respond.engine  # noqa: F401  (imported before counting starts)
    from flightlog.store.base import RunQuery

    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        shutil.copy(path, f"{d}/run.db")
        store = open_store(f"sqlite:///{d}/run.db")
        runs = sorted(store.list_runs(RunQuery(limit=10**7)), key=lambda r: r.started_ns)
        ids = [r.id for r in runs]
        gc.disable()  # as the run-end worker runs a batch
        pipeline.runs_ended(store, ids[:INGEST_WARM])
        for k in range(INGEST_WARM, INGEST_WARM + count, INGEST_BATCH):
            pipeline.runs_ended(store, ids[k : min(k + INGEST_BATCH, INGEST_WARM + count)])
        store.close()


def instructions(argv: list[str]) -> None:
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _cachegrind import instructions as cachegrind_instructions

    ap = argparse.ArgumentParser(prog="run_end_cost.py --instructions")
    ap.add_argument("traces", nargs="?", type=int, default=1200)
    ap.add_argument("--against", help="another source tree's src/ to count as well")
    args = ap.parse_args(argv)
    counted = args.traces - INGEST_WARM
    trees = [("this tree", _SRC)] + ([("against", args.against)] if args.against else [])
    with tempfile.TemporaryDirectory() as d:
        _ingest_store(f"{d}/ingest.db", args.traces)
        for name, src in trees:
            env = {**os.environ, "FLIGHTLOG_BENCH_SRC": src, "PYTHONPATH": src}
            refs = []
            for count in (0, counted):
                child = [__file__, "--instructions-child", f"{d}/ingest.db", str(count)]
                refs.append(cachegrind_instructions(child, env))
            print(
                f"{name} ({src}): {(refs[1] - refs[0]) / counted:,.0f} instructions per run end "
                f"({counted} runs of {SPANS_PER_TRACE} spans, 100 at a time, after "
                f"{INGEST_WARM} not counted)"
            )


def ingest(argv: list[str]) -> None:
    import argparse
    import json
    import subprocess

    ap = argparse.ArgumentParser(prog="run_end_cost.py --ingest")
    ap.add_argument("traces", nargs="?", type=int, default=1200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--against", help="another source tree's src/ to alternate with")
    args = ap.parse_args(argv)
    trees = [("this tree", _SRC)] + ([("against", args.against)] if args.against else [])
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in trees}
    with tempfile.TemporaryDirectory() as d:
        _ingest_store(f"{d}/ingest.db", args.traces)
        for _ in range(args.rounds):
            for name, src in trees:
                env = {**os.environ, "FLIGHTLOG_BENCH_SRC": src, "PYTHONPATH": src}
                out = subprocess.run(
                    [sys.executable, __file__, "--ingest-child", f"{d}/ingest.db"],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                per_run = json.loads(out.strip().splitlines()[-1])
                results[name].append((statistics.median(per_run), min(per_run)))
    load = os.getloadavg()[0]
    spans = 4  # spans per trace
    for name, src in trees:
        med = statistics.median(r[0] for r in results[name]) * 1e6
        low = statistics.median(r[1] for r in results[name]) * 1e6
        print(
            f"{name} ({src}): run-end CPU {med:.0f} us per run, {med / spans:.0f} us per span "
            f"(median batch); lowest batch {low:.0f} us per run, {low / spans:.0f} us per span; "
            f"{args.rounds} rounds of {args.traces - INGEST_WARM} runs"
        )
    if args.against:
        a = statistics.median(r[0] for r in results["this tree"])
        b = statistics.median(r[0] for r in results["against"])
        print(f"against / this tree: {b / a:.2f}x (median batch)")
    print(f"load average {load:.1f}")


def main() -> None:
    if sys.argv[1:2] == ["--replay"]:
        replay(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1000)
        return
    if sys.argv[1:2] == ["--ingest-child"]:
        _ingest_measure(sys.argv[2])
        return
    if sys.argv[1:2] == ["--ingest"]:
        ingest(sys.argv[2:])
        return
    if sys.argv[1:2] == ["--instructions-child"]:
        _instructions_child(sys.argv[2], int(sys.argv[3]))
        return
    if sys.argv[1:2] == ["--instructions"]:
        instructions(sys.argv[2:])
        return
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 100000]
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)  # no flightlog.toml: alerting off
        store = open_store(f"sqlite:///{d}/f.db")
        stored = 0
        first = None
        for n, size in enumerate(sizes):
            _fill(store, stored, size)
            stored = size
            vm, wall, cpu = measure(store, (n + 1) * 10**7)
            first = first or (vm, wall, cpu)
            print(
                f"{size:>7} runs stored: {vm:>8,.0f} SQLite VM instructions per run end "
                f"({vm / first[0]:.2f}x), {cpu * 1000:.2f} ms CPU ({cpu / first[2]:.2f}x), "
                f"{wall * 1000:.1f} ms wall ({wall / first[1]:.2f}x); "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        store.close()


if __name__ == "__main__":
    main()
