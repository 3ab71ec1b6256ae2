"""The CLI on a real store: demo, runs, show; errors are messages, not tracebacks."""

from __future__ import annotations

import json

import flightlog
from tests.conftest import run_cli


def test_demo_then_runs_and_show(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    demo = run_cli("demo", "--db", url, "--dir", str(tmp_path / "demo"), check=True)
    assert "20 succeeded, 1 failed" in demo.stdout
    assert "failed at step 4 of 7 (validate_claim)" in demo.stdout
    assert "search_policy -> 3 assess_coverage" in demo.stdout

    listed = json.loads(run_cli("runs", "--db", url, "--json", "-n", "100", check=True).stdout)
    assert len(listed) == 21
    failed = [r for r in listed if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["workflow"] == "claims-triage"

    only_failed = json.loads(
        run_cli(
            "runs", "--status", "failed", "--json", env={"FLIGHTLOG_URL": url}, check=True
        ).stdout
    )
    assert [r["id"] for r in only_failed] == [failed[0]["id"]]

    shown = run_cli("show", failed[0]["id"][:10], "--db", url, check=True).stdout
    assert "failed at step 4 of 7 (validate_claim)" in shown
    assert "search_policy" in shown and "retriever" in shown and "lineage:" in shown

    as_json = json.loads(run_cli("show", failed[0]["id"], "--db", url, "--json", check=True).stdout)
    assert as_json["run"]["failure_point"]["index"] == 4
    assert as_json["run"]["failure_point"]["of_steps"] == 7
    names = [s["name"] for s in as_json["steps"]]
    assert names == ["intake_claim", "search_policy", "assess_coverage", "validate_claim"]
    search = as_json["steps"][1]
    assert (
        search["output"] == []
        and search["agent"] == "retriever"
        and search["owner"] == "search-team"
    )
    assert any(f["detector"] == "check" for f in as_json["findings"])
    assert {(e["evidence"]) for e in as_json["edges"]} >= {"identity"}

    text_runs = run_cli(
        "runs", "--db", url, "--workflow", "claims-triage", "--since", "1h", check=True
    ).stdout
    assert "claims-triage" in text_runs and "failed" in text_runs
    typo = run_cli("runs", "--db", url, "-w", "claims-triag", check=True).stdout
    assert "no workflow 'claims-triag' here (workflows: claims-triage)" in typo
    none = run_cli("runs", "--db", url, "-w", "claims-triage", "-s", "degraded", check=True)
    assert none.stdout.strip() == "no runs match"  # a known workflow: only the filter says no


def test_cli_errors_are_one_line_messages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    flightlog.open_store(url).close()  # an empty store (reading never creates one)
    out = run_cli("show", "abcdef", "--db", url)
    assert out.returncode == 1 and "no run with id" in out.stderr and "Traceback" not in out.stderr
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 1000)
    out = run_cli("runs", "--db", f"sqlite:///{bad}")
    assert out.returncode == 1 and "not a valid SQLite database" in out.stderr
    out = run_cli("runs", "--db", url, "--since", "yesterday-ish")
    assert out.returncode == 2 and "neither a duration" in out.stderr


def test_help_lists_commands() -> None:
    out = run_cli("--help", check=True).stdout
    for name in ("demo", "runs", "show"):
        assert name in out
    # With keys, a browser cannot send a Bearer header: the help says where it signs in.
    for command in ("serve", "keys"):
        assert "/signin" in " ".join(run_cli(command, "--help", check=True).stdout.split())


def test_demo_against_a_server_url_says_it_needs_a_store() -> None:
    out = run_cli("demo", "--db", "http://127.0.0.1:9/")
    assert (
        out.returncode == 1 and "needs a store URL" in out.stderr and "Traceback" not in out.stderr
    )
