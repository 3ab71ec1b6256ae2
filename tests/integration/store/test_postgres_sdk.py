"""The SDK recording into PostgreSQL, end to end: runs with steps, lineage edges and
findings read back; several processes recording at once; SIGKILL right after flush()."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flightlog
from flightlog.store import RunQuery
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[3]


@flightlog.step(kind="tool", agent="retriever", owner="search-team")
def search_policy(query: str) -> list[str]:
    return [] if "empty" in query else [f"policy about {query} covering water damage"]


@flightlog.step(kind="llm", agent="planner", owner="planning-team", model="scripted-1")
def plan(docs: list[str]) -> str:
    flightlog.usage(
        input_tokens=120, output_tokens=30, cost=0.0021, model="scripted-1", provider="local"
    )
    return "approve" if docs else "escalate"


@flightlog.step(kind="guardrail", agent="validator", owner="risk-team")
def validate(decision: str, docs: list[str]) -> bool:
    ok = flightlog.check(len(docs) > 0, "has_docs", "retrieval returned no documents")
    return bool(ok)


def test_sdk_records_runs_into_postgres_and_reads_them_back(pg_url: str) -> None:
    flightlog.configure(pg_url, service="claims")
    try:
        ids = {}
        for text in ("burst pipe", "empty claim"):
            with flightlog.run(
                "claims-triage", owner="claims-team", input={"text": text}, steps=3
            ) as run:
                docs = search_policy(text)
                decision = plan(docs)
                if not validate(decision, docs):
                    run.fail("validator rejected the claim")
            ids[text] = run.id
        assert flightlog.flush()
    finally:
        flightlog.shutdown()

    store = flightlog.open_store(pg_url)
    assert store.dialect == "postgresql"
    runs = store.list_runs(RunQuery(workflow="claims-triage"))
    assert {r.id for r in runs} == set(ids.values())

    ok = store.get_record(ids["burst pipe"])
    assert ok.run.status == "succeeded" and ok.run.owner == "claims-team"
    assert ok.run.service == "claims" and ok.run.declared_steps == 3
    assert [(s.index, s.name, s.kind, s.agent, s.owner) for s in ok.steps] == [
        (1, "search_policy", "tool", "retriever", "search-team"),
        (2, "plan", "llm", "planner", "planning-team"),
        (3, "validate", "guardrail", "validator", "risk-team"),
    ]
    llm = ok.steps[1]
    assert (llm.model, llm.input_tokens, llm.output_tokens, llm.cost) == (
        "scripted-1",
        120,
        30,
        0.0021,
    )
    names = {s.id: s.name for s in ok.steps}
    data_edges = {(names[e.source], names[e.target]) for e in ok.edges}
    assert {
        ("search_policy", "plan"),
        ("search_policy", "validate"),
        ("plan", "validate"),
    } <= data_edges
    payloads = store.get_payloads([s.input_hash for s in ok.steps] + [ok.steps[0].output_hash])
    assert all(type(v) is bytes for v in payloads.values())
    assert payloads[ok.steps[0].input_hash] == b'{"query":"burst pipe"}'
    assert b"water damage" in payloads[ok.steps[0].output_hash]

    bad = store.get_record(ids["empty claim"])
    assert bad.run.status == "failed" and bad.run.reason == "validator rejected the claim"
    checks = [f for f in bad.findings if f.detector == "check"]
    assert [(f.message, f.evidence["check"]) for f in checks] == [
        ("retrieval returned no documents", "has_docs")
    ]
    assert checks[0].step_id == next(s.id for s in bad.steps if s.name == "validate")
    assert store.resolve_run_id(ids["empty claim"][:10]) == ids["empty claim"]
    store.close()

    # The command line reads the same records through the URL.
    out = run_cli("runs", "--db", pg_url, "--json", check=True)
    assert {r["id"] for r in json.loads(out.stdout)} == set(ids.values())
    out = run_cli("show", ids["empty claim"][:12], "--db", pg_url, check=True)
    assert "search_policy" in out.stdout and "validate" in out.stdout


_WRITER = textwrap.dedent("""
    import sys, flightlog
    url, tag, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    flightlog.configure(url)

    @flightlog.step(kind="tool")
    def work(i, tag):
        return {"tag": tag, "i": i, "text": "payload " * 8}

    @flightlog.step(kind="llm")
    def use(value):
        return len(value["text"])

    for n in range(runs):
        with flightlog.run("concurrent", input={"tag": tag, "n": n}):
            for i in range(4):
                use(work(i, tag))
    assert flightlog.flush(60)
    stats = flightlog.stats()
    assert stats["dropped"] == 0, stats
    print("DONE", flush=True)
""")


@pytest.mark.slow
def test_several_processes_record_at_once_and_nothing_is_lost(pg_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, pg_url, f"p{i}", "40"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0 and out.strip() == "DONE", err
    store = flightlog.open_store(pg_url)
    assert store.count_runs(RunQuery(workflow="concurrent")) == 160
    with store.read() as tx:
        assert tx.fetchone("SELECT COUNT(*) FROM steps") == (160 * 8,)
        assert tx.fetchone("SELECT COUNT(*) FROM edges WHERE kind = 'data'") == (160 * 4,)
        assert tx.fetchone("SELECT COUNT(*) FROM runs WHERE status <> 'succeeded'") == (0,)
        # every process's every run, by its input
        inputs = tx.fetchone(
            "SELECT COUNT(DISTINCT input_hash) FROM runs WHERE workflow = 'concurrent'"
        )
    assert inputs == (160,)
    store.close()


def test_sigkill_after_flush_loses_nothing_on_postgres(pg_url: str) -> None:
    code = textwrap.dedent(f"""
        import time, flightlog
        flightlog.configure({pg_url!r})

        @flightlog.step(kind="tool")
        def work(i):
            return {{"i": i}}

        for n in range(100):
            with flightlog.run("killed", input={{"n": n}}):
                for i in range(3):
                    work(i)
        flightlog.flush()
        print("FLUSHED", flush=True)
        for n in range(1000):
            with flightlog.run("after-flush"):
                work(n)
        time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "FLUSHED"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    store = flightlog.open_store(pg_url)
    runs = store.list_runs(RunQuery(workflow="killed", limit=1000))
    assert len(runs) == 100 and all(r.status == "succeeded" for r in runs)
    with store.read() as tx:
        assert tx.fetchone(
            "SELECT COUNT(*) FROM steps s JOIN runs r ON r.id = s.run_id "
            "WHERE r.workflow = 'killed'"
        ) == (300,)
    store.close()
