"""Recorded text cannot drive the terminal: ANSI, OSC, C1 and bidi controls captured in a run
come out of ``show``, ``why``, ``detect``, ``runs``, ``incidents`` and ``report --format md``
as visible escapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import flightlog
from flightlog.cli._safe import clean, json_safe

# colour + clear screen, an OSC 8 hyperlink, an OSC 52 clipboard write, 8-bit CSI and OSC,
# a carriage return that overwrites the line, and a right-to-left override
HOSTILE = (
    "\x1b[31;1mRED\x1b[2J\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"
    "\x1b]52;c;cm0gLXJmIH4=\x07\x9b6n\x9d0;title\x9c ok\rFORGED \u202eevil\x08"
)
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\x9d", "\x9c", "\r", "\u202e", "\x08")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    db = tmp_path_factory.mktemp("term") / "t.db"
    url = f"sqlite:///{db}"
    flightlog.configure(url)

    @flightlog.step(kind="tool", agent="agent" + HOSTILE)
    def lookup(q: str) -> str:
        return "output " + HOSTILE

    @flightlog.step(kind="llm")
    def decide(text: str) -> str:
        raise ValueError("model said " + HOSTILE)

    try:
        with flightlog.run("flow" + HOSTILE, owner="team" + HOSTILE, input=HOSTILE) as run:
            flightlog.check(False, "check" + HOSTILE, "check failed " + HOSTILE)
            decide(lookup(HOSTILE))
    except ValueError:
        pass
    flightlog.flush()
    flightlog.shutdown()
    return url, run.id


@pytest.mark.parametrize(
    "args",
    [
        ["runs"],
        ["show", "{run}"],
        ["why", "{run}"],
        ["detect", "{run}", "--dry-run"],
        ["report", "{run}", "--format", "md"],
        ["report", "{run}", "--format", "json"],
        ["runs", "--json"],
        ["show", "{run}", "--json"],
    ],
)
def test_no_control_sequence_reaches_the_terminal(store: tuple[str, str], args: list[str]) -> None:
    url, run_id = store
    cmd = [a.replace("{run}", run_id) for a in args]
    out = subprocess.run(
        [sys.executable, "-m", "flightlog", *cmd, "--db", url],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for stream in (out.stdout, out.stderr):
        for c in FORBIDDEN:
            assert c not in stream, (cmd, repr(c))
    assert "\\x1b" in out.stdout or "\\u001b" in out.stdout, cmd  # shown, not obeyed


def test_report_file_is_clean(store: tuple[str, str], tmp_path: Path) -> None:
    url, run_id = store
    target = tmp_path / "pm.md"
    subprocess.run(
        [sys.executable, "-m", "flightlog", "report", run_id, "--db", url, "--out", str(target)],
        check=True,
        capture_output=True,
    )
    text = target.read_text(encoding="utf-8")
    assert not any(c in text for c in FORBIDDEN)
    assert "\\x1b" in text and "52;c;" in text  # shown as text, not obeyed


def test_clean_and_json_safe() -> None:
    assert clean("a\x1b[0mb\tc\nd") == "a\\x1b[0mb\tc\nd"
    assert clean("a\tb\nc", one_line=True) == "a\\tb\\nc"
    assert clean("\x9b\u202e\u2066\x7f") == "\\x9b\\u202e\\u2066\\x7f"
    import orjson

    doc = orjson.dumps({"v": "x\x9by\u202e"}).decode()
    assert orjson.loads(json_safe(doc)) == {"v": "x\x9by\u202e"}
    assert "\x9b" not in json_safe(doc) and "\u202e" not in json_safe(doc)
