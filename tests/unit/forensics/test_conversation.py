"""Conversation-aware attribution: speakers, executors, authors of executed code, control
messages, and accuracy on the Who&When Algorithm-Generated logs (no model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flightlog.forensics import why
from flightlog.forensics.conversation import (
    attribute_messages,
    execution_outcome,
    find_executors,
    read_messages,
    split_role,
)
from flightlog.forensics.transcripts import transcript_batch

LOGS = Path(__file__).resolve().parents[2] / "data" / "whowhen" / "Algorithm-Generated"


def _msgs(*rows: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"name": n, "role": "user", "content": c} for n, c in rows]


def test_executor_is_a_whole_word_or_what_a_speaker_does() -> None:
    msgs = read_messages(
        _msgs(
            ("WomenInComputerScienceHistory_Expert", "The first woman was ... error-free."),
            ("Computer_terminal", "exitcode: 0 (execution succeeded)\nCode output: 4"),
            ("ComputerTerminal", "nothing to run"),
            ("runner", "exitcode: 1 (execution failed)\nCode output: boom"),
        )
    )
    assert find_executors(msgs) == {"Computer_terminal", "ComputerTerminal", "runner"}
    assert msgs[0].kind == "task" and msgs[3].outcome == "failed"


def test_magentic_one_roles_are_agents_with_a_note() -> None:
    assert split_role("Orchestrator (-> WebSurfer)") == ("Orchestrator", "-> WebSurfer")
    assert split_role("Orchestrator (thought)") == ("Orchestrator", "thought")
    assert split_role("WebSurfer") == ("WebSurfer", None)
    msgs = read_messages(
        [
            {"role": "human", "content": "Find the paper."},
            {"role": "Orchestrator (thought)", "content": "Initial plan: search."},
            {"role": "Orchestrator (-> WebSurfer)", "content": "Search arXiv for it."},
            {"role": "WebSurfer", "content": "I typed 'paper' into the search box."},
            {"role": "Orchestrator (termination condition)", "content": "Done."},
        ]
    )
    assert [m.agent for m in msgs] == [
        "human",
        "Orchestrator",
        "Orchestrator",
        "WebSurfer",
        "Orchestrator",
    ]
    assert [m.kind for m in msgs] == ["task", "thought", "instruction", "work", "control"]
    assert msgs[2].addressee == "WebSurfer"
    v = attribute_messages(msgs)
    assert v.best is not None and v.best.agent == "WebSurfer" and v.best.index == 3


def test_failed_execution_blames_the_author_never_the_executor() -> None:
    msgs = read_messages(
        _msgs(
            ("Planner_Expert", "# Task\nCount the rows."),
            ("Analyst_Expert", "Let me look first."),
            ("Coder_Expert", "```python\nprint(rows)\n```"),
            ("Computer_terminal", "exitcode: 1 (execution failed)\nCode output: NameError: rows"),
            ("Checker_Expert", "Looks fine to me. TERMINATE"),
        )
    )
    assert msgs[3].kind == "execution" and msgs[3].author_index == 2
    v = attribute_messages(msgs)
    assert v.best is not None and (v.best.index, v.best.agent) == (2, "Coder_Expert")
    assert v.method == "execution failed"
    assert any("NameError" in r for r in v.best.reasons)
    assert [c.index for c in v.candidates][:2] == [2, 1]  # then the first work turn
    assert all(0 <= c.confidence < 0.5 for c in v.candidates)  # calibrated: hypotheses


def test_execution_outcomes() -> None:
    assert execution_outcome("exitcode: 1 (execution failed)\nCode output: x\nKeyError: 'a'") == (
        "failed",
        "exit code 1: KeyError: 'a'",
    )
    assert execution_outcome("exitcode: 0 (execution succeeded)\nCode output: ") == (
        "empty",
        "exit code 0 but no output",
    )
    assert (
        execution_outcome("There is no code from the last 1 message for me to execute.")[0]
        == "nothing"
    )
    assert execution_outcome(
        "The script ran, then exited with an error (POSIX exit code: 2)\nIts output was:\nboom"
    ) == ("failed", "exit code 2: boom")
    assert execution_outcome(
        "The script ran but produced no output to console. The POSIX exit code was: 0."
    ) == ("empty", "exit code 0 but no output")
    assert execution_outcome("We hit an error: the file was not found, so I retried.") is None


def test_openai_tool_calls_attribute_to_the_caller() -> None:
    msgs = read_messages(
        [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "", "is_error": True},
            {"role": "assistant", "content": "It is sunny."},
        ]
    )
    assert [m.kind for m in msgs] == ["control", "task", "work", "execution", "work"]
    assert msgs[3].author_index == 2 and msgs[3].outcome == "failed"
    v = attribute_messages(msgs)
    assert v.best is not None and v.best.index == 2


def _score(files: list[Path], store: Any) -> tuple[float, float]:
    agent = step = 0
    for f in files:
        data = json.loads(f.read_text())
        batch = transcript_batch(data, workflow="ww", key=f.name)
        store.write(batch)
        rc = why(store, batch.runs[0].id).root_cause
        assert rc is not None and rc.kind != "tool"  # never the executor
        agent += rc.agent == data["mistake_agent"]
        step += rc.index - 1 == int(data["mistake_step"])
    return agent / len(files), step / len(files)


def test_accuracy_on_who_and_when_without_a_model(store: Any) -> None:
    """The issue's targets (agent >= 55%, step >= 35% exact) on all 126 logs, and on the half
    the rules were not designed on (even file numbers) separately."""
    files = sorted(LOGS.glob("*.json"), key=lambda p: int(p.stem))
    assert len(files) == 126
    agent, step = _score(files, store)
    assert agent >= 0.55 and step >= 0.35, (agent, step)
    other = [f for f in files if int(f.stem) % 2 == 0]
    agent, step = _score(other, store)
    assert agent >= 0.55 and step >= 0.35, (agent, step)


def test_detectors_leave_reasoning_and_orchestration_alone(store: Any) -> None:
    """Error-like words in an agent's reasoning are not an error payload, and an orchestrator
    that says the same routine thing again and again is not a loop; a failed execution still
    is an error."""
    from flightlog.detect import detect
    from flightlog.forensics.transcripts import conversation_batch

    raw = [
        {"role": "human", "content": "Find the file and count its rows."},
        {"role": "Orchestrator (thought)", "content": "Next speaker Coder"},
        {"role": "Coder", "content": "If the file is not found we get an error; plan below."},
        {"role": "Orchestrator (thought)", "content": "Next speaker Coder"},
        {"role": "Coder", "content": "```python\nopen('x')\n```"},
        {
            "role": "ComputerTerminal",
            "content": "exitcode: 1 (execution failed)\nCode output: FileNotFoundError: x",
        },
        {"role": "Orchestrator (thought)", "content": "Next speaker Coder"},
        {"role": "Coder", "content": "The error says the file was not found. Failure noted."},
    ]
    batch = conversation_batch(raw, workflow="c", key="k")
    store.write(batch)
    found = detect(store, batch.runs[0].id)
    flagged = {(f.detector, f.step_id) for f in found}
    by_index = {s.id: s.index for s in batch.steps}
    assert not any(d == "loops" for d, _ in flagged), found
    assert {by_index[s] for d, s in flagged if d == "tool_errors" and s} <= {6}, found
    assert any(by_index.get(s or "") == 6 for _, s in flagged)  # the failed execution
