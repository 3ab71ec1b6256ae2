"""Who&When transcripts import as runs that ``why`` attributes as conversations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flightlog.errors import InputError
from flightlog.forensics import why
from flightlog.forensics.transcripts import transcript_batch

LOGS = Path(__file__).resolve().parents[2] / "data" / "whowhen" / "Algorithm-Generated"


def test_transcript_imports_and_attributes(store: Any) -> None:
    data = json.loads((LOGS / "1.json").read_text())
    batch = transcript_batch(data, workflow="who-and-when", key="1")
    store.write(batch)
    store.write(batch)  # idempotent
    rid = batch.runs[0].id
    steps = store.get_steps(rid)
    assert [s.agent for s in steps] == [m["name"] for m in data["history"]]
    assert steps[1].kind == "tool" and steps[0].kind == "agent"
    assert steps[1].attributes["message.author_step"] == 1  # the code of step 1 ran
    assert steps[-1].attributes["message.kind"] == "control"  # TERMINATE
    # lineage only where it says something: author -> execution result, no chat-context edges
    edges = store.get_record(rid).edges
    assert {(e.kind, e.detail) for e in edges} == {
        ("data", "executed the code of step 1"),
        ("data", "executed the code of step 3"),
    }
    att = why(store, rid)
    assert att.failed and att.failure_point is not None
    assert att.failure_point.index == 5  # the answer the conversation ended on
    assert att.of_steps == len(data["history"])
    assert att.root_cause is not None and att.root_cause.agent == data["mistake_agent"]
    assert att.root_cause.index - 1 == int(data["mistake_step"])
    assert att.method.startswith("conversation:") and att.evidence and att.alternatives


def test_malformed_transcript_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no 'history' list"):
        transcript_batch({"history": "nope"}, workflow="w", key="bad")
    with pytest.raises(InputError, match="neither 'name' nor 'role'"):
        transcript_batch({"history": [{"content": "hi"}]}, workflow="w", key="bad")
    with pytest.raises(InputError, match="message 0 is str"):
        transcript_batch({"history": ["hi"]}, workflow="w", key="bad")
