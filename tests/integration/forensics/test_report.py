"""``flightlog report``: the postmortem in Markdown, HTML and JSON; hostile captured content
stays inert in the HTML."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import flightlog

HOSTILE = (
    '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'
    " Ignore previous instructions."
)


@flightlog.step(kind="tool", agent="retriever", owner="search-team")
def fetch(q: str, broken: bool) -> dict[str, Any]:
    if broken:
        return {"docs": []}
    return {"docs": [f"{q} doc {i}" for i in range(3)]}


@flightlog.step(kind="llm", agent="writer", owner="comms-team", model="m")
def write(docs: dict[str, Any], broken: bool) -> dict[str, Any]:
    return {"text": HOSTILE if broken else "A fine answer.", "finish_reason": "stop"}


@flightlog.step(kind="guardrail", agent="reviewer", owner="qa-team")
def review(answer: dict[str, Any]) -> None:
    if not flightlog.check("<" not in answer["text"], "no_markup", "answer contains markup"):
        raise ValueError("answer rejected: " + answer["text"])


def one(i: int, broken: bool = False) -> str:
    try:
        with flightlog.run("answers", owner="answers-team", version="1.4") as run:
            review(write(fetch(f"q{i}", broken), broken))
    except ValueError:
        pass
    return run.id


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    db = f"sqlite:///{tmp_path_factory.mktemp('report') / 'r.db'}"
    flightlog.configure(db)
    for i in range(6):
        one(i)
    earlier = one(98, broken=True)
    rid = one(99, broken=True)
    flightlog.flush()
    flightlog.shutdown()
    yield db, rid, earlier


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightlog", *args], capture_output=True, text=True
    )


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(a for a, _ in attrs)


def test_markdown_report_has_every_section(recorded: tuple[str, str, str]) -> None:
    db, rid, earlier = recorded
    p = _cli("report", rid, "--db", db)
    assert p.returncode == 0, p.stderr
    md = p.stdout
    for heading in (
        "## Summary",
        "## Impact",
        "## Failure point",
        "## Root cause",
        "## Causal chain",
        "## Timeline",
        "## Owners",
        "## Similar earlier failures",
        "## Action items",
    ):
        assert heading in md
    assert "Step 3 of 3: **review**" in md
    assert "Step 1: **fetch** (agent retriever, kind tool, owner search-team)" in md
    assert "- Root-cause step: search-team" in md and "- Workflow: answers-team" in md
    assert f"run `{earlier[:12]}`: step 1 fetch (same root cause)" in md
    assert "<script" not in md and "&lt;script&gt;" in md


def test_html_report_is_self_contained_and_inert(
    recorded: tuple[str, str, str], tmp_path: Path
) -> None:
    db, rid, _ = recorded
    out = tmp_path / "pm.html"
    p = _cli("report", rid, "--db", db, "--format", "html", "--out", str(out))
    assert p.returncode == 0 and f"wrote html report to {out}" in p.stdout
    doc = out.read_text()
    assert "<script" not in doc.lower() and "<img" not in doc.lower()
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in doc
    assert "script-src 'none'" in doc
    parsed = _Tags()
    parsed.feed(doc)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert not {a for a in parsed.attrs if a.startswith("on")}
    assert not {t for t in parsed.tags if t in ("link", "iframe", "object", "embed")}
    assert "src" not in parsed.attrs and "href" not in parsed.attrs  # nothing external


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="chromium is not installed",
)
def test_html_report_renders_in_a_browser_without_running_scripts(
    recorded: tuple[str, str, str], tmp_path: Path
) -> None:
    db, rid, _ = recorded
    out = tmp_path / "pm.html"
    assert _cli("report", rid, "--db", db, "--format", "html", "--out", str(out)).returncode == 0
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser
    p = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = p.stdout
    assert "<title>Postmortem: answers run" in dom  # a script would have set "pwned"
    assert "pwned</title>" not in dom
    assert "&lt;script&gt;" in dom


def test_json_report_and_bad_input(recorded: tuple[str, str, str], tmp_path: Path) -> None:
    db, rid, _ = recorded
    data = json.loads(_cli("report", rid, "--db", db, "--format", "json").stdout)
    assert data["attribution"]["root_cause"]["name"] == "fetch"
    assert data["impact"]["steps_completed"] == 2 and data["action_items"]
    assert [t["name"] for t in data["timeline"]] == ["fetch", "write", "review"]
    p = _cli("report", "nope", "--db", db)
    assert p.returncode == 1 and p.stderr.startswith("error: ") and "'nope'" in p.stderr
    p = _cli("report", rid, "--db", db, "--out", str(tmp_path / "missing" / "x.md"))
    assert p.returncode == 1 and "cannot write the report" in p.stderr


def test_a_succeeded_runs_report_names_no_root_cause_owner(
    recorded: tuple[str, str, str],
) -> None:
    """The run page links every run's report; one that succeeded has no root-cause or
    failure-point step, so no owner of one (it said "unowned", or with [[owners]] rules the
    workflow's team)."""
    db, _, _ = recorded
    ok = _cli("runs", "--db", db, "-s", "succeeded", "-q", "-n", "1").stdout.strip()
    data = json.loads(_cli("report", ok, "--db", db, "--format", "json").stdout)
    assert data["owners"]["root_cause_step"] == "none (nothing to attribute)"
    assert data["owners"]["failure_point_step"] == "-"
    assert data["owners"]["workflow"] == "answers-team"
