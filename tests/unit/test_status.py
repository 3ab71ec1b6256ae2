"""The derived status of ingested runs (flightlog.status): escaped errors fail a
run, handled ones degrade it, an error-free trace succeeds, whatever the root span says."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flightlog.model import ErrorInfo, Step
from flightlog.status import RootFacts, derive_status, root_of


def step(
    sid: str,
    parent: str | None,
    kind: str,
    start: int,
    end: int,
    status: str = "ok",
    events: list[dict[str, Any]] | None = None,
) -> Step:
    return Step(
        run_id="r" * 32,
        id=sid,
        name=sid,
        kind=kind,
        index=0,
        started_ns=start,
        parent_id=parent,
        status=status,
        ended_ns=end,
        error=ErrorInfo("ValueError", f"{sid} broke") if status == "error" else None,
        attributes={"otel.events": events} if events else {},
    )


def test_clean_trace_succeeds() -> None:
    steps = [step("root", None, "chain", 0, 100), step("llm", "root", "llm", 10, 20)]
    assert derive_status(steps, RootFacts("root")).status == "succeeded"


def test_error_on_agent_under_an_ok_root_fails_the_run() -> None:
    # The Agents SDK shape: workflow root OK, agent span ERROR, function span ERROR.
    steps = [
        step("wf", None, "chain", 0, 100),
        step("agent", "wf", "agent", 1, 99, "error"),
        step("llm", "agent", "llm", 2, 10),
        step("tool", "agent", "tool", 11, 20, "error"),
    ]
    d = derive_status(steps, RootFacts("wf"))
    assert d.status == "failed"
    assert d.failed_step_id == "tool"  # where it was raised, not the agent it passed through


def test_error_the_run_answered_after_is_degraded() -> None:
    # smolagents / ToolNode shape: the tool fails, the model answers anyway.
    steps = [
        step("agent", None, "agent", 0, 100),
        step("llm1", "agent", "llm", 1, 10),
        step("tool", "agent", "tool", 11, 20, "error"),
        step("llm2", "agent", "llm", 21, 30),
    ]
    d = derive_status(steps, RootFacts("agent"))
    assert d.status == "degraded"
    assert d.failed_step_id == "tool" and d.swallowed == ("tool",)


def test_error_with_nothing_after_it_fails_even_with_an_ok_root() -> None:
    steps = [
        step("root", None, "chain", 0, 100),
        step("llm", "root", "llm", 1, 10),
        step("tool", "root", "tool", 11, 20, "error"),
    ]
    assert derive_status(steps, RootFacts("root")).status == "failed"


def test_root_error_fails_and_points_at_the_deepest_error() -> None:
    steps = [
        step("root", None, "chain", 0, 100, "error"),
        step("node", "root", "chain", 5, 90, "error"),
        step("tool", "node", "tool", 6, 20, "error"),
        step("llm", "root", "llm", 30, 40),
    ]
    d = derive_status(steps, RootFacts("root"))
    assert (d.status, d.failed_step_id) == ("failed", "tool")


def test_nested_agent_error_handled_by_its_supervisor_is_degraded() -> None:
    steps = [
        step("boss", None, "agent", 0, 100),
        step("worker", "boss", "agent", 5, 20, "error"),
        step("llm", "boss", "llm", 30, 40),
    ]
    assert derive_status(steps, RootFacts("boss")).status == "degraded"


def test_exception_event_on_an_ok_span_is_a_handled_error() -> None:
    caught = [{"name": "exception", "attributes": {"exception.type": "KeyError"}}]
    steps = [
        step("root", None, "agent", 0, 100),
        step("tool", "root", "tool", 1, 10, events=caught),
        step("llm", "root", "llm", 20, 30),
    ]
    d = derive_status(steps, RootFacts("root"))
    assert (d.status, d.failed_step_id) == ("degraded", "tool")


def test_no_root_yet_is_running() -> None:
    steps = [step("tool", "missing", "tool", 1, 10, "error")]
    assert derive_status(steps, RootFacts(None)).status == "running"
    assert derive_status(steps, RootFacts("tool", ended=False)).status == "running"


def test_root_of_prefers_the_parentless_step() -> None:
    steps = [step("a", "gone", "tool", 0, 1), step("b", None, "chain", 5, 10)]
    assert root_of(steps) == "b"


_kinds = st.sampled_from(["llm", "tool", "agent", "chain", "function"])


@given(
    st.lists(
        st.tuples(_kinds, st.booleans(), st.integers(0, 50), st.integers(0, 20)),
        min_size=1,
        max_size=8,
    )
)
def test_a_trace_with_an_error_is_never_a_clean_success(spec: list[Any]) -> None:
    steps = [step("root", None, "chain", 0, 1000)]
    for i, (kind, err, start, dur) in enumerate(spec):
        status = "error" if err else "ok"
        steps.append(step(f"s{i}", "root", kind, start + 1, start + 1 + dur, status))
    d = derive_status(steps, RootFacts("root"))
    any_error = any(err for _, err, _, _ in spec)
    assert (d.status == "succeeded") == (not any_error)
    if any_error:
        assert d.status in ("failed", "degraded") and d.failed_step_id is not None
