"""Free text enters ledger leaves only as salted commitments: reasons, finding messages,
error messages and tracebacks, every attribute and evidence value, audit-record summaries."""

from __future__ import annotations

import orjson

from flightlog.ledger.config import LedgerConfig
from flightlog.ledger.entry import Encoder, committed_paths, finding_data, run_data, step_data
from flightlog.model import ErrorInfo, Finding, Run, Step

NAME = b"Quackenbush"


def test_free_text_and_every_attribute_are_committed() -> None:
    enc = Encoder(LedgerConfig())
    run = Run("r" * 32, "wf", 1, reason="refused Quackenbush", attributes={"note": "Quackenbush"})
    step = Step(
        "r" * 32,
        "s" * 16,
        "call",
        "tool",
        1,
        1,
        error=ErrorInfo("KeyError", "no Quackenbush", "Traceback: Quackenbush"),
        attributes={"customer": "Quackenbush", "n": 1},
    )
    finding = Finding(
        "f", "r" * 32, "check", "error", "Quackenbush", evidence={"who": "Quackenbush"}
    )
    for kind, data in (
        ("run.end", run_data(run)),
        ("step", step_data(step)),
        ("finding", finding_data(finding)),
    ):
        e = enc.encode(kind, "id", "r" * 32, data, 1)
        assert NAME not in e.entry, kind
        assert e.openings is not None and NAME in e.openings
    e = enc.encode("step", "id", "r" * 32, step_data(step), 1)
    paths = set(committed_paths(orjson.loads(e.entry)["data"]))
    assert {("error", "message"), ("error", "traceback"), ("attributes",)} <= paths
    assert b'"type":"KeyError"' in e.entry  # the exception's type stays readable


def test_audit_records_commit_their_free_text() -> None:
    enc = Encoder(LedgerConfig())
    att = {"run_id": "r", "summary": "Quackenbush", "evidence": ["Quackenbush"], "confidence": 1}
    e = enc.encode("attribution", "r", "r", att, 1, top_level_keys=True)
    assert NAME not in e.entry and b'"confidence":1' in e.entry
