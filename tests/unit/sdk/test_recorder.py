"""Recording through the public SDK into a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

import flightlog
from flightlog.payload import decode


def record_of(store, run_id):  # type: ignore[no-untyped-def]
    flightlog.flush()
    return store.get_record(run_id)


def payload(store, h):  # type: ignore[no-untyped-def]
    return decode(store.get_payloads([h])[h]) if h else None


def test_run_with_steps_records_everything(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="tool", agent="retriever", owner="search-team")
    def search(query: str, k: int = 3) -> list[str]:
        return [f"{query}-{i}" for i in range(k)]

    @flightlog.step(kind="llm", agent="planner", model="m-1")
    def plan(docs: list[str]) -> dict[str, object]:
        flightlog.usage(input_tokens=12, output_tokens=4, cost=0.002, provider="acme")
        flightlog.annotate(prompt_version="v13")
        return {"n": len(docs)}

    with flightlog.run("wf", owner="team", input={"q": "hello"}, version="1.2", steps=2) as run:
        plan(search("hello", k=2))
    rec = record_of(store, run.id)
    assert rec.run.status == "succeeded" and rec.run.workflow == "wf" and rec.run.owner == "team"
    assert rec.run.version == "1.2" and rec.run.declared_steps == 2
    assert payload(store, rec.run.input_hash) == {"q": "hello"}
    s1, s2 = rec.steps
    assert (s1.index, s1.name, s1.kind, s1.agent, s1.owner) == (
        1,
        "search",
        "tool",
        "retriever",
        "search-team",
    )
    assert payload(store, s1.input_hash) == {"query": "hello", "k": 2}
    assert payload(store, s1.output_hash) == ["hello-0", "hello-1"]
    assert (s2.index, s2.model, s2.provider, s2.input_tokens, s2.output_tokens) == (
        2,
        "m-1",
        "acme",
        12,
        4,
    )
    assert s2.cost == pytest.approx(0.002)
    assert s2.attributes["prompt_version"] == "v13"
    assert s1.started_ns <= s1.ended_ns <= s2.started_ns <= s2.ended_ns
    assert len(s1.id) == 16 and len(run.id) == 32


def test_exception_fails_run_and_is_reraised_unchanged(store) -> None:  # type: ignore[no-untyped-def]
    boom = KeyError("missing")

    @flightlog.step(kind="tool")
    def inner() -> None:
        raise boom

    @flightlog.step(kind="agent")
    def outer() -> None:
        inner()

    with pytest.raises(KeyError) as info, flightlog.run("wf") as run:
        outer()
    assert info.value is boom
    rec = record_of(store, run.id)
    outer_s, inner_s = rec.steps
    assert inner_s.parent_id == outer_s.id and outer_s.parent_id is None
    assert inner_s.status == outer_s.status == "error"
    assert rec.run.status == "failed"
    assert rec.run.error and rec.run.error.type == "KeyError"
    assert rec.run.error.origin_step_id == inner_s.id  # where it originated, not where it escaped
    assert rec.run.failed_step_id == inner_s.id
    assert "raise boom" in (inner_s.error.traceback or "")


def test_run_fail_records_reason_and_current_step(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="guardrail")
    def validate(run: flightlog.ActiveRun) -> None:
        run.fail("validator rejected the claim")

    with flightlog.run("wf") as run:
        validate(run)
    rec = record_of(store, run.id)
    assert rec.run.status == "failed" and rec.run.reason == "validator rejected the claim"
    assert rec.run.failed_step_id == rec.steps[0].id


def test_succeed_records_output(store) -> None:  # type: ignore[no-untyped-def]
    with flightlog.run("wf") as run:
        run.succeed({"ok": True})
    rec = record_of(store, run.id)
    assert rec.run.status == "succeeded" and payload(store, rec.run.output_hash) == {"ok": True}


def test_check_records_findings(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="tool")
    def t() -> int:
        assert flightlog.check(True, "fine")
        assert flightlog.check([], "has_docs", "retrieval returned no documents", count=0) is False
        return 1

    with flightlog.run("wf") as run:
        t()
        flightlog.check(False, "run_level", "bad", severity="warning")
    rec = record_of(store, run.id)
    step_f, run_f = sorted(rec.findings, key=lambda f: f.step_id is None)
    assert step_f.detector == "check" and step_f.severity == "error"
    assert step_f.step_id == rec.steps[0].id and step_f.evidence == {
        "check": "has_docs",
        "count": 0,
    }
    assert run_f.step_id is None and run_f.severity == "warning"
    assert rec.steps[0].attributes["flightlog.checks"] == {"fine": True, "has_docs": False}


def test_step_outside_run_starts_implicit_run(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="tool")
    def lonely(x: int) -> int:
        return x * 2

    assert lonely(21) == 42
    flightlog.flush()
    runs = store.list_runs()
    assert len(runs) == 1 and runs[0].workflow == "lonely" and runs[0].status == "succeeded"
    assert store.get_steps(runs[0].id)[0].index == 1


def test_implicit_run_fails_with_its_step(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step
    def bad() -> None:
        raise ValueError("x")

    with pytest.raises(ValueError):
        bad()
    flightlog.flush()
    (r,) = store.list_runs()
    assert r.status == "failed"


def test_async_steps_and_async_run(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="llm")
    async def ask(q: str) -> str:
        await asyncio.sleep(0)
        return q.upper()

    async def main() -> str:
        async with flightlog.run("async-wf") as run:
            assert await ask("hi") == "HI"
            await ask("again")
        return run.id

    run_id = asyncio.run(main())
    rec = record_of(store, run_id)
    assert [s.name for s in rec.steps] == ["ask", "ask"] and [s.index for s in rec.steps] == [1, 2]


def test_context_manager_step(store) -> None:  # type: ignore[no-untyped-def]
    with flightlog.run("wf") as run, flightlog.step("lookup", kind="tool", agent="a") as s:
        s.set_output({"rows": 3})
    rec = record_of(store, run.id)
    assert rec.steps[0].name == "lookup" and payload(store, rec.steps[0].output_hash) == {"rows": 3}


def test_methods_generators_and_recursion_behave_as_without_flightlog(store) -> None:  # type: ignore[no-untyped-def]
    class Agent:
        def __init__(self) -> None:
            self.calls = 0

        @flightlog.step(kind="agent")
        def act(self, x: int) -> int:
            self.calls += 1
            return x + 1

    @flightlog.step
    def gen(n: int):  # type: ignore[no-untyped-def]
        yield from range(n)

    @flightlog.step
    def fact(n: int) -> int:
        return 1 if n <= 1 else n * fact(n - 1)

    a = Agent()
    with flightlog.run("wf") as run:
        assert a.act(1) == 2 and a.calls == 1
        assert list(gen(3)) == [0, 1, 2]
        assert fact(30) == 265252859812191058636308480000000
    rec = record_of(store, run.id)
    act = rec.steps[0]
    assert payload(store, act.input_hash) == {"x": 1}  # self is not recorded
    assert payload(store, rec.steps[1].output_hash) == [0, 1, 2]  # the yielded items
    facts = [s for s in rec.steps if s.name == "fact"]
    assert len(facts) == 30 and facts[-1].parent_id == facts[-2].id
    assert payload(store, facts[0].output_hash) == {"$int": "265252859812191058636308480000000"}


def test_hostile_arguments_are_recorded_safely(store) -> None:  # type: ignore[no-untyped-def]
    class Evil:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    cyclic: list[object] = []
    cyclic.append(cyclic)

    @flightlog.step
    def take(a: object, b: object, c: object, d: bytes) -> str:
        return "done"

    with flightlog.run("wf") as run:
        assert take(Evil(), cyclic, "x" * 400_000, b"\x00\xff" * 10) == "done"
    rec = record_of(store, run.id)
    stored = store.get_payloads([rec.steps[0].input_hash])[rec.steps[0].input_hash]
    value = decode(stored)
    assert value["$truncated"] is True and value["size"] > 400_000


def test_stats_report_counts(store) -> None:  # type: ignore[no-untyped-def]
    with flightlog.run("wf"):
        pass
    flightlog.flush()
    st = flightlog.stats()
    assert st["enabled"] and st["written"] >= 2 and st["dropped"] == 0 and st["pending"] == 0


def test_configure_rejects_bad_urls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(flightlog.ConfigurationError, match="unsupported store URL"):
        flightlog.configure("mysql://nope")
    with pytest.raises(flightlog.ConfigurationError, match="does not exist"):
        flightlog.configure(f"sqlite:///{tmp_path}/missing/dir/x.db")


def test_configure_rejects_corrupt_and_readonly_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(flightlog.StoreCorruptError, match="not a valid SQLite database"):
        flightlog.configure(f"sqlite:///{bad}")
    ro = tmp_path / "ro.db"
    flightlog.open_store(f"sqlite:///{ro}").close()
    ro.chmod(0o444)
    immutable = _is_root()  # root ignores mode bits: make the file immutable instead
    if immutable:
        subprocess.run(["chattr", "+i", str(ro)], check=True)
    try:
        with pytest.raises(flightlog.StoreError, match="read-only"):
            flightlog.configure(f"sqlite:///{ro}")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(ro)], check=True)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def test_configure_rejects_a_bad_flightlog_toml_naming_the_line(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "flightlog.toml").write_text(
        '[teams.platform]\n\n[[owners]]\nteam = "nobody-defined-this-team"\n'
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        flightlog.ConfigurationError, match=r"flightlog.toml line \d+: .*unknown team"
    ):
        flightlog.configure(f"sqlite:///{tmp_path / 'x.db'}")
