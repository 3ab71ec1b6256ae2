"""What a server's write of ingested spans costs when no other server wrote the runs meanwhile:
``server.ingest.derive`` then ``Store.write(reorder=..., lineage=...)``, as the writer thread
does (``Ingestor._write``), for OTLP requests decoded by ``flightlog.otel.decode``.

Per trace a workflow hands over from the agent ``triage`` to the agent ``billing``
(OpenInference graph nodes) after a tool call whose output the LLM call quotes. Three cases:

- ``late``: the root span, ``triage`` and the tool arrive (written first, not measured),
  then ``billing`` and the LLM call in a request of their own (the run is stored: late
  hand-offs and data edges are linked over its stored steps);
- ``whole``: every span of the trace in one request (the run is new);
- ``plain``: as ``late`` without graph nodes (no hand-offs to link).

Printed per case: SQL statements per write (load-independent: every ``execute``,
``executemany``, ``fetchall``, ``fetchone`` and their batch forms of this thread through the
store's transactions; the ledger's integrator thread is not counted) and the process CPU
(``time.process_time``) per span of the measured requests, median of ``--repeat`` trials
(load-dependent: indicative). It fails if the store inferred any lineage again inside a
write (``store._sql.relineage``: only when another writer stored steps of the run
meanwhile, never here). Run it with ``PYTHONPATH`` naming the tree to measure, the
old and the new alternately in one session:
``PYTHONPATH=src python bench/handoff_cost.py [--url postgresql://...] [--traces 200]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT_DIR = Path(__file__).resolve().parents[1]
if str(ROOT_DIR) not in sys.path:
    sys.path.insert(0, str(ROOT_DIR))

from bench._otlp_spans import body, span  # noqa: E402

ROOT, TRIAGE, TOOL, BILLING, LLM = (f"e00000000000000{i}" for i in range(1, 6))
COUNTED = (
    "execute",
    "executemany",
    "fetchall",
    "fetchone",
    "executemany_returning",
    "insert_all",
    "fetchall_native",
)


def trace_spans(trace: str, graph: bool = True) -> tuple[list[Any], list[Any]]:
    """One trace in two parts: the root, ``triage`` and its tool call; then ``billing``
    (handed over from ``triage`` when ``graph``: OpenInference graph nodes) and its LLM
    call, whose input quotes the tool's output (a data edge)."""
    sentence = f"Policy {trace[:12]} covers water damage up to 25000 euros"
    node = (lambda **kv: kv) if graph else (lambda **kv: {})
    first = [
        span(trace, ROOT, None, "CHAIN", 0, 1000),
        span(trace, TRIAGE, ROOT, "AGENT", 10, 200, **node(**{"graph.node.id": "triage"})),
        span(trace, TOOL, TRIAGE, "TOOL", 50, 150, **{"output.value": sentence}),
    ]
    second = [
        span(
            trace,
            BILLING,
            ROOT,
            "AGENT",
            300,
            900,
            **node(**{"graph.node.id": "billing", "graph.node.parent_id": "triage"}),
        ),
        span(trace, LLM, BILLING, "LLM", 400, 800, **{"input.value": f"Summarise: {sentence}"}),
    ]
    return first, second


def _request(spans: list[Any]) -> Any:
    from flightlog.otel.decode import parse_request, request_to_batch

    return request_to_batch(parse_request(body(spans), "application/x-protobuf"))


def _write(store: Any, result: Any) -> None:
    """As ``Ingestor._write`` does for one request."""
    import dataclasses

    from flightlog.server.ingest import derive
    from flightlog.store.facts import PLACEHOLDER

    batch = result.batch
    batch.runs = [
        dataclasses.replace(r, attributes={**r.attributes, PLACEHOLDER: True})
        if r.id in result.placeholder_runs
        else r
        for r in batch.runs
    ]
    inferred = set(result.inferred_runs)
    lineage = derive(store, batch, inferred) if inferred else {}
    store.write(batch, reorder=inferred, lineage=lineage)


class _Counter:
    n = 0  # statements of this thread (not the ledger's integrator)
    again = 0  # lineage inferred again inside the write (``_sql.relineage``)


def _count_statements(store: Any) -> None:
    import threading

    from flightlog.store import _sql

    with store.read() as tx:
        cls = type(tx)
    if getattr(cls, "_counted", False):
        return
    me = threading.get_ident()
    for name in COUNTED:
        fn = getattr(cls, name, None)
        if fn is None:
            continue

        def counted(self: Any, *a: Any, _fn: Any = fn, **k: Any) -> Any:
            if threading.get_ident() == me:
                _Counter.n += 1
            return _fn(self, *a, **k)

        setattr(cls, name, counted)
    cls._counted = True
    for name in ("infer_data_edges", "handoff_edges"):
        fn = getattr(_sql, name, None)
        if fn is None:
            continue

        def again(*a: Any, _fn: Any = fn, **k: Any) -> Any:
            _Counter.again += 1
            return _fn(*a, **k)

        setattr(_sql, name, again)


def trial(url: str, case: str, traces: int, seq: int) -> tuple[int, float, int]:
    from flightlog.app import open_store

    store = open_store(url)
    try:
        _count_statements(store)
        ids = [f"{seq:08x}{case[0].encode().hex()}{i:022x}" for i in range(traces)]
        graph = case != "plain"
        halves = [trace_spans(t, graph) for t in ids]
        if case == "whole":
            first: list[Any] = []
            second = [s for a, b in halves for s in (*a, *b)]
        else:
            first = [s for a, _ in halves for s in a]
            second = [s for _, b in halves for s in b]
        if first:
            _write(store, _request(first))
        result = _request(second)
        before_n, before_t = _Counter.n, time.process_time()
        _write(store, result)
        cpu = time.process_time() - before_t
        statements = _Counter.n - before_n
        assert _Counter.again == 0, "one server: nothing is inferred again in the write"
        edges = sum(
            1
            for t in ids[:5]
            for e in store.get_edges(t)
            if (e.source, e.target, e.kind) in {(TRIAGE, BILLING, "handoff"), (TOOL, LLM, "data")}
        )
        return statements, cpu / len(second), edges
    finally:
        store.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=None, help="a store URL (default: a fresh SQLite file)")
    ap.add_argument("--traces", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        seq = int(time.time()) & 0xFFFFFF
        for case in ("late", "whole", "plain"):
            got = [trial(url, case, args.traces, seq + n) for n in range(args.repeat)]
            statements = sorted({g[0] for g in got})
            cpu = statistics.median(g[1] for g in got) * 1e6
            print(
                f"{case:6s} statements/write {statements}  CPU {cpu:7.1f} us/span  "
                f"edges in first 5 runs {got[0][2]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
