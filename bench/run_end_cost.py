"""Run-end work per ended run as the store grows (issue: run-end cost must not grow with N).

    python bench/run_end_cost.py [SIZES...]       # default: 300 3000 30000
    python bench/run_end_cost.py --replay STORE.db [RUNS]


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
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["FLIGHTLOG_LEDGER"] = "off"

from tests.integration.test_run_end_cost import UNIT, _fill, _run  # noqa: E402

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


def main() -> None:
    if sys.argv[1:2] == ["--replay"]:
        replay(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1000)
        return
    sizes = [int(a) for a in sys.argv[1:]] or [300, 3000, 30000]
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
