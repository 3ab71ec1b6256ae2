"""CPU per span of the server's ingestion writer, in-process, on the ingestion bench's spans.

    python bench/_ingest_writer.py [--traces 5000] [--rounds 3] [--per-batch 1] [--stages]

What the writer thread of ``flightlog serve`` does with decoded requests: ``Ingestor._write``
(merging the requests of a batch, ``derive``: data edges and statuses, ``Store.write`` with
the audit ledger's write hook, the commit with ``synchronous=FULL``), on a fresh SQLite store
each round. The requests are the bench's (``bench/ingest.py``: requests of 512 spans, four
spans a trace), decoded and scrubbed once by the server's request path before the clock
starts; ``--per-batch`` requests are written per transaction (the server's writer takes
every request waiting). CPU is ``time.thread_time`` of the writing thread, per span; the
median over ``--rounds`` is printed. ``--stages`` also times the stages of each batch
(wrapping functions of the modules in this process, so it adds a little overhead).

The code measured is whatever ``flightlog`` is importable: point ``PYTHONPATH`` at another
tree's ``src`` to measure it, alternating runs, e.g.

    for t in /tmp/base $PWD; do PYTHONPATH=$t/src python bench/_ingest_writer.py; done

``--instructions`` counts instead of timing (valgrind must be installed; the machine's load
does not move the figure): the requests are decoded once, then each tree (this one, and
``--against OTHER/src``) writes them in a child process under ``valgrind --tool=cachegrind``,
twice: the first ``--warm`` transactions only, and all of them; the difference, per span
written after the warm ones, is printed (instructions of the writer thread's work, user
space: SQLite and Python; the kernel's share of the WAL writes and fsyncs is not counted).
``PYTHONHASHSEED`` is fixed, so a count repeats to within a few hundred instructions.

    python bench/_ingest_writer.py --instructions --traces 2500 --against /tmp/base/src
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ingest_spans import batches, build_spans  # noqa: E402


class _NoRunEnd:
    """Run-end work is not the writer's: ended runs are dropped here."""

    mode = "none"
    pid = None
    restarts = 0
    defer = False
    failing = None

    def start(self) -> None: ...
    def check(self) -> None: ...
    def close(self, timeout: float = 0.0) -> None: ...

    def run(self, run_ids: list[str]) -> Any:
        from flightlog.server.runend_worker import RunEndReport

        return RunEndReport()


def _decoded(n_traces: int) -> list[Any]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from flightlog import privacy
    from flightlog.otel.decode import parse_request
    from flightlog.server import screen

    scrubber = privacy.load({})
    spans = build_spans(n_traces)
    out = []
    for b in batches(spans, 512):
        req = parse_request(encode_spans(b).SerializePartialToString(), "application/x-protobuf")
        screen.screen_times(req)
        for piece in screen.split(req, 2000):
            r = screen.decode_parsed(piece)
            scrubber.batch(r.batch)
            out.append(r)
    return out


_STAGES = {
    "derive": ("flightlog.server.ingest", "derive"),
    "statuses": ("flightlog.server.ingest", "derive_statuses"),
    "data edges": ("flightlog.server.ingest", "infer_data_edges"),
    "Store.write": ("flightlog.store._sql", "SQLStore.write"),
    "write_batch": ("flightlog.store._sql", "write_batch"),
    "reorder": ("flightlog.store._sql", "reorder_runs_steps"),
    "settle (order, outcome)": ("flightlog.store._sql", "settle_runs"),
    "ledger hook": ("flightlog.ledger.log", "Ledger.on_write"),
    "ledger encode": ("flightlog.ledger.entry", "Encoder.encode_known"),
    "ledger append": ("flightlog.ledger.log", "Ledger.submit"),
    "ledger reads runs": ("flightlog.store.core", "runs_by_id"),
    "ledger reads run entries": ("flightlog.ledger.log", "Ledger._logged_by_run"),
    "ledger run indexes": ("flightlog.ledger.log", "Ledger._index_entry"),
    "step outlines": ("flightlog.store._sql", "SQLStore.step_outlines"),
    "insert_all": ("flightlog.store.sqlite", "_SQLiteTx.insert_all"),
    "ledger reads edges": ("flightlog.store.core", "edges_as_stored"),
}


def _wrap_stages(totals: dict[str, float]) -> None:
    import importlib

    for name, where in _STAGES.items():
        if where is None:
            continue
        module = importlib.import_module(where[0])
        owner: Any = module
        parts = where[1].split(".")
        for p in parts[:-1]:
            owner = getattr(owner, p)
        fn = getattr(owner, parts[-1], None)
        if fn is None:
            continue

        def timed(*a: Any, _fn: Any = fn, _name: str = name, **k: Any) -> Any:
            c = time.thread_time()
            try:
                return _fn(*a, **k)
            finally:
                totals[_name] += time.thread_time() - c

        setattr(owner, parts[-1], timed)


def _round(results: list[Any], per_batch: int, workdir: Path, spans: int) -> tuple[float, float]:
    from flightlog.app import open_store
    from flightlog.server.ingest import Ingestor, _Item

    path = workdir / f"w{time.monotonic_ns()}.db"
    store = open_store(f"sqlite:///{path}")
    ing = Ingestor(store, run_end=_NoRunEnd())
    try:
        items = [_Item(result=_copy(r), spans=r.accepted_spans) for r in results]
        gc.collect()
        wall = time.perf_counter()
        cpu = time.thread_time()
        for k in range(0, len(items), per_batch):
            ing._write(items[k : k + per_batch])
        cpu = time.thread_time() - cpu
        wall = time.perf_counter() - wall
    finally:
        ing.close()
        store.close()
    for p in workdir.glob(path.name + "*"):
        p.unlink()
    return cpu * 1e6 / spans, wall * 1e6 / spans


def _copy(r: Any) -> Any:
    """A fresh copy of a decoded request (the writer adds to its batch and runs)."""
    import copy

    return copy.deepcopy(r)


def _instructions_child(pickled: str, per_batch: int, batches: int) -> None:
    """(child, under valgrind) Write the first ``batches`` transactions of the pickled
    requests to a fresh store."""
    import pickle

    from flightlog.app import open_store
    from flightlog.server.ingest import Ingestor, _Item

    with open(pickled, "rb") as f:
        results = pickle.load(f)
    with tempfile.TemporaryDirectory(
        prefix="flightlog-writer-bench-", dir=os.environ.get("BENCH_TMP")
    ) as tmp:
        store = open_store(f"sqlite:///{tmp}/w.db")
        ing = Ingestor(store, run_end=_NoRunEnd())
        ing.close()  # its threads stop; ``_write`` is called here, on one thread
        items = [_Item(result=r, spans=r.accepted_spans) for r in results]
        for k in range(0, min(len(items), batches * per_batch), per_batch):
            ing._write(items[k : k + per_batch])
        store.close()


def _instructions(results: list[Any], args: argparse.Namespace) -> None:
    import pickle

    from _cachegrind import instructions

    here = Path(__file__).resolve()
    trees = [("this tree", str(here.parent.parent / "src"))]
    if args.against:
        trees.append(("against", args.against))
    n_batches = -(-len(results) // args.per_batch)
    counted = sum(r.accepted_spans for r in results[args.warm * args.per_batch :])
    if not counted:
        raise SystemExit(
            f"--traces {args.traces} makes {len(results)} request(s), all in the "
            f"{args.warm} warm transaction(s): raise --traces or lower --warm"
        )
    with tempfile.TemporaryDirectory(prefix="flightlog-writer-bench-") as tmp:
        pickled = f"{tmp}/requests.pickle"
        with open(pickled, "wb") as f:
            pickle.dump(results, f)
        for _ in range(args.repeat):
            for name, src in trees:
                env = {**os.environ, "PYTHONPATH": src, "PYTHONHASHSEED": "0"}
                refs = []
                for batches in (args.warm, n_batches):
                    refs.append(
                        instructions(
                            [
                                str(here),
                                "--instructions-child",
                                pickled,
                                str(args.per_batch),
                                str(batches),
                            ],
                            env,
                        )
                    )
                print(
                    f"{name} ({src}): {(refs[1] - refs[0]) / counted:,.0f} instructions per span "
                    f"({counted:,} spans after {args.warm} warm transactions of "
                    f"{args.per_batch} requests)",
                    flush=True,
                )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--instructions-child"]:
        _instructions_child(argv[1], int(argv[2]), int(argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traces", type=int, default=5000, help="traces of 4 spans (default 5000)")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    p.add_argument("--per-batch", type=int, default=1, help="requests per transaction")
    p.add_argument("--stages", action="store_true", help="also time the stages")
    p.add_argument(
        "--instructions", action="store_true", help="count instructions under valgrind instead"
    )
    p.add_argument("--against", help="(--instructions) another tree's src/ to count as well")
    p.add_argument("--warm", type=int, default=2, help="(--instructions) transactions not counted")
    p.add_argument("--repeat", type=int, default=1, help="(--instructions) counts per tree")
    args = p.parse_args(argv)

    import flightlog

    results = _decoded(args.traces)
    if args.instructions:
        _instructions(results, args)
        return 0
    spans = sum(r.accepted_spans for r in results)
    totals: dict[str, float] = dict.fromkeys(_STAGES, 0.0)
    if args.stages:
        _wrap_stages(totals)
    cpus, walls = [], []
    with tempfile.TemporaryDirectory(
        prefix="flightlog-writer-bench-", dir=os.environ.get("BENCH_TMP")
    ) as tmp:
        for k in range(args.rounds + 1):
            for t in totals:
                totals[t] = 0.0
            cpu, wall = _round(results, args.per_batch, Path(tmp), spans)
            if k:  # the first round warms up
                cpus.append(cpu)
                walls.append(wall)
    src = Path(flightlog.__file__).resolve().parent.parent
    print(
        f"writer, {spans:,} spans in requests of 512, {args.per_batch} per transaction, "
        f"code {src}, load {os.getloadavg()[0]:.1f}: CPU µs/span median "
        f"{statistics.median(cpus):.1f} (rounds {', '.join(f'{c:.1f}' for c in cpus)}); "
        f"wall {statistics.median(walls):.1f}"
    )
    if args.stages:
        print(
            "  last round's stages, CPU µs/span: "
            + ", ".join(f"{k} {v * 1e6 / spans:.1f}" for k, v in totals.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
