"""Who&When transcripts import as runs that ``why`` can attribute (without a traceback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flightlog.errors import InputError
from flightlog.forensics import why
from flightlog.forensics.transcripts import transcript_batch

TESTDATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "testdata"
if not TESTDATA.exists():
    TESTDATA = Path("/work/shared/testdata")
LOGS = TESTDATA / "whowhen" / "Algorithm-Generated"


@pytest.mark.skipif(not LOGS.exists(), reason="Who&When test data not present")
def test_transcript_imports_and_attributes(store: Any) -> None:
    data = json.loads((LOGS / "1.json").read_text())
    batch = transcript_batch(data, workflow="who-and-when", key="1")
    store.write(batch)
    store.write(batch)  # idempotent
    rid = batch.runs[0].id
    steps = store.get_steps(rid)
    assert [s.agent for s in steps] == [m["name"] for m in data["history"]]
    assert steps[1].kind == "tool" and steps[0].kind == "agent"
    att = why(store, rid)
    assert att.failed and att.failure_point is not None
    assert att.failure_point.index == len(data["history"])
    assert att.of_steps == len(data["history"])
    assert att.root_cause is not None and att.evidence


def test_malformed_transcript_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no 'history' list"):
        transcript_batch({"history": "nope"}, workflow="w", key="bad")
