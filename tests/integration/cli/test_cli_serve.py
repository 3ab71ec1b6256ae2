"""``flightlog serve`` on the command line: help text and a clear error for a bad store."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def test_serve_help_describes_the_options() -> None:
    out = run_cli("serve", "--help", check=True).stdout
    for word in (
        "--host",
        "127.0.0.1",
        "--port",
        "4318",
        "--db",
        "/v1/traces",
        "--max-body-mb",
        "--queue-spans",
        "/api/v1/",
    ):
        assert word in out


def test_serve_with_an_impossible_store_is_one_line_error(tmp_path: Path) -> None:
    proc = run_cli("serve", "--port", "0", "--db", f"sqlite:///{tmp_path}/missing/dir/x.db")
    assert proc.returncode == 1
    assert "error: " in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
