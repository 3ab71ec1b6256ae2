"""Conversation logs of every supported format import through ``flightlog import``; bad input
is a one-line error; ``flightlog show`` and the web UI display the messages (text folded, full
agent names, no invented timings, lineage only where it says something)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

LOGS = Path(__file__).resolve().parents[2] / "data" / "whowhen" / "Algorithm-Generated"

MAGENTIC = {
    "question": "How many stars does the repository have?",
    "ground_truth": "42",
    "history": [
        {"role": "human", "content": "How many stars does the repository have?"},
        {"role": "Orchestrator (thought)", "content": "Initial plan: ask WebSurfer to look."},
        {"role": "Orchestrator (-> WebSurfer)", "content": "Open the repository page."},
        {"role": "WebSurfer", "content": "I clicked 'Stars'. The page shows 41 stars.\x1b[2J"},
        {"role": "Orchestrator (thought)", "content": "Next speaker WebSurfer"},
        {"role": "Orchestrator (-> WebSurfer)", "content": "Confirm the number."},
        {"role": "WebSurfer", "content": "Confirmed: 41 <script>alert(1)</script>"},
        {"role": "Orchestrator (termination condition)", "content": "Final answer: 41"},
    ],
}
OPENAI_CHAT = [
    {"role": "system", "content": "You are a travel agent."},
    {"role": "user", "content": "Book the cheapest flight to Oslo."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "search_flights", "arguments": '{"to": "OSL"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"error": "upstream timeout"}'},
    {"role": "assistant", "content": "I booked flight XY1 for 900 EUR."},
]
AGENTCHAT = {
    "messages": [
        {"source": "user", "type": "TextMessage", "content": "What is 6 * 7?"},
        {
            "source": "calculator_agent",
            "type": "ToolCallRequestEvent",
            "content": [{"id": "c9", "name": "multiply", "arguments": '{"a": 6, "b": 7}'}],
        },
        {
            "source": "calculator_agent",
            "type": "ToolCallExecutionEvent",
            "content": [{"call_id": "c9", "content": "Error: overflow", "is_error": True}],
        },
        {"source": "calculator_agent", "type": "TextMessage", "content": "It is 48."},
    ],
    "stop_reason": "Text 'TERMINATE' mentioned",
}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightlog", *args], capture_output=True, text=True, timeout=120
    )


def _write(tmp_path: Path, name: str, data: Any) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return str(p)


def _import(db: str, *args: str) -> list[dict[str, Any]]:
    p = _cli("import", *args, "--db", db, "--json")
    assert p.returncode == 0, p.stderr
    rows: list[dict[str, Any]] = json.loads(p.stdout)
    return rows


def test_every_format_imports_and_is_attributed(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    files = [
        _write(tmp_path, "magentic.json", MAGENTIC),
        _write(tmp_path, "chat.json", OPENAI_CHAT),
        _write(tmp_path, "agentchat.json", AGENTCHAT),
    ]
    rows = _import(db, *files)
    atts = [json.loads(_cli("why", r["run_id"], "--db", db, "--json").stdout) for r in rows]
    # Magentic-One: roles are agents with a note; the first work message is WebSurfer's
    assert atts[0]["root_cause"]["agent"] == "WebSurfer" and atts[0]["root_cause"]["index"] == 4
    assert atts[0]["failure_point"]["index"] == 7
    # OpenAI chat: the failed tool result is the assistant's tool call's, not the tool's
    assert atts[1]["root_cause"]["index"] == 3 and atts[1]["root_cause"]["kind"] == "agent"
    assert any("upstream timeout" in e or "failed" in e for e in atts[1]["evidence"])
    # AutoGen AgentChat: the tool call that errored
    assert atts[2]["root_cause"]["agent"] == "calculator_agent"
    assert atts[2]["root_cause"]["index"] == 2
    assert all(a["method"].startswith("conversation:") for a in atts)
    again = _import(db, "--format", "chat", files[1])  # explicit format, idempotent
    assert again[0]["run_id"] == rows[1]["run_id"]


def test_bad_input_is_a_one_line_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    cases = [
        (_write(tmp_path, "a.json", {"history": [{"content": "who?"}]}), [], "neither 'name'"),
        (_write(tmp_path, "b.json", [1, 2]), [], "message 0 is int"),
        (_write(tmp_path, "c.json", {"rows": []}), [], "not a conversation log"),
        (_write(tmp_path, "d.json", OPENAI_CHAT), ["--format", "whowhen"], "'history' list"),
        (_write(tmp_path, "e.json", [{"role": "user"}]), [], "has no 'content'"),
    ]
    for path, extra, expected in cases:
        p = _cli("import", path, *extra, "--db", db)
        assert p.returncode == 1, (path, p.stdout)
        assert p.stderr.startswith("error: ") and expected in p.stderr, p.stderr
        assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    p = _cli("import", cases[0][0], "--format", "csv", "--db", db)
    assert p.returncode == 2 and "csv" in p.stderr
    # nothing was written by the failed imports
    assert json.loads(_cli("runs", "--db", db, "--json").stdout) == []


def test_show_prints_messages_not_timings(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    rows = _import(db, str(LOGS / "26.json"), _write(tmp_path, "m.json", MAGENTIC))
    out = _cli("show", rows[0]["run_id"], "--db", db).stdout
    assert "WomenInComputerScienceHistory_Expert" in out  # full name, and not an executor
    assert "timing unknown" in out and "ms" not in out.split("\n")[1]
    assert "│ exitcode: 0 (execution succeeded)" in out or "│ exitcode" in out
    assert "chat context" not in out
    lineage = out.split("lineage:\n", 1)[1].strip().splitlines()
    assert lineage and all("executed the code of step" in ln for ln in lineage)
    out = _cli("show", rows[1]["run_id"], "--db", db).stdout
    assert "Orchestrator  [Orchestrator (-> WebSurfer)]  ·  instruction to WebSurfer" in out
    assert "3 -> 4  (handoff: instruction)" in out
    assert "\x1b" not in out and "41 stars.\\x1b[2J" in out  # escapes shown, not obeyed
    listing = _cli("runs", "--db", db).stdout.splitlines()[1]
    assert "unknown                unknown" in listing
    report = _cli("report", rows[1]["run_id"], "--db", db, "--format", "md").stdout
    assert "after an unknown duration" in report and "µs" not in report
    data = json.loads(_cli("show", rows[1]["run_id"], "--db", db, "--json").stdout)
    assert data["steps"][6]["output"] == "Confirmed: 41 <script>alert(1)</script>"


def test_web_ui_shows_folded_messages(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    from flightlog.app import open_store
    from flightlog.forensics.transcripts import conversation_batch, normalise
    from flightlog.server.ui.run import run_page

    store = open_store(f"sqlite:///{tmp_path / 'ui.db'}")
    try:
        raw, meta = normalise(MAGENTIC)
        batch = conversation_batch(raw, workflow="m1", key="m", meta=meta)
        store.write(batch)
        html = bytes(run_page(store, batch.runs[0].id).body).decode()
    finally:
        store.close()
    assert "timing <b>unknown</b>" in html and "<th>duration</th>" not in html
    assert "<details><summary>I clicked" in html
    assert "instruction to WebSurfer" in html and "[Orchestrator (-&gt; WebSurfer)]" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "root cause" in html and "failure point" in html
