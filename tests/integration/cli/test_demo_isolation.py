"""``flightlog demo`` keeps to its own directory: its own store and flightlog.toml, never the
user's ./flightlog.db or ./flightlog.toml; re-runs replace it; every command it suggests
works as printed, in the shell that ran it."""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli
from tests.integration.respond.conftest import Receiver


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")}


def _runs(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


def _user_store_with_a_failure(tmp_path: Path) -> None:
    script = (
        "import flightlog\n"
        "flightlog.configure()\n"
        "with flightlog.run('my-own-workflow', owner='me') as run:\n"
        "    run.fail('mine')\n"
        "flightlog.flush()\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=_env(), check=True)


def test_demo_ignores_the_users_store_and_config(tmp_path: Path) -> None:
    _user_store_with_a_failure(tmp_path)
    receiver = Receiver().start()
    try:
        (tmp_path / "flightlog.toml").write_text(
            "[teams.me]\nchannels = ['hook']\n"
            f"[channels.hook]\ntype = 'webhook'\nurl = '{receiver.url('/mine')}'\n"
            "[[owners]]\nteam = 'me'\n[route]\ngroup_wait = '0s'\n",
            encoding="utf-8",
        )
        out = run_cli("demo", cwd=tmp_path, env=_env(), check=True).stdout
        assert receiver.all("/mine") == []  # the user's alerting was never run
    finally:
        receiver.stop()
    assert _runs(tmp_path / "flightlog.db") == 1  # the user's store is untouched
    home = tmp_path / "flightlog-demo"
    assert _runs(home / "flightlog.db") == 21
    assert (home / "flightlog.toml").is_file()
    assert "into its own store flightlog-demo/flightlog.db" in out
    failed = run_cli(
        "runs", "--status", "failed", "-q", cwd=home, env=_env(), check=True
    ).stdout.split()
    assert len(failed) == 1
    said = out.split("The page said:", 1)[1]
    assert f"run {failed[0]} failed at step 4 of 7" in said
    # the write-ahead log was checkpointed: the .db file alone holds the demo
    wal = home / "flightlog.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_rerun_replaces_the_previous_demo(tmp_path: Path) -> None:
    run_cli("demo", "--runs", "3", cwd=tmp_path, env=_env(), check=True)
    again = run_cli("demo", "--runs", "3", cwd=tmp_path, env=_env(), check=True).stdout
    assert again.startswith("Replaced the previous demo: recorded 4 runs")
    assert _runs(tmp_path / "flightlog-demo" / "flightlog.db") == 4
    assert len(list((tmp_path / "flightlog-demo").glob("postmortem-*.html"))) == 1


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    home = tmp_path / "mine"
    home.mkdir()
    (home / "notes.txt").write_text("keep me", encoding="utf-8")
    p = run_cli("demo", "--dir", str(home), env=_env())
    assert p.returncode == 1 and "did not write" in p.stderr and "Traceback" not in p.stderr
    assert sorted(f.name for f in home.iterdir()) == ["notes.txt"]


def test_demo_added_to_an_explicit_store_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    run_cli("demo", "--db", url, "--runs", "3", cwd=tmp_path, env=_env(), check=True)
    again = run_cli("demo", "--db", url, "--runs", "3", cwd=tmp_path, env=_env(), check=True).stdout
    assert f"Added 4 runs of 'claims-triage' (3 succeeded, 1 failed) to {url}" in again
    assert "(it held 4 runs before, now 8)" in again


def test_every_command_the_demo_suggests_works_as_printed(tmp_path: Path) -> None:
    out = run_cli("demo", "--runs", "4", cwd=tmp_path, env=_env(), check=True).stdout
    lines = out.split("Explore it, in this shell:\n", 1)[1].splitlines()
    commands = [line.strip() for line in lines if line.strip()]
    assert commands[0].startswith("cd ") or commands[1].startswith("cd ")
    assert any(c.startswith("flightlog why ") for c in commands)
    # The shell has this interpreter's bin directory on its PATH only if the demo says how:
    # run with a PATH that lacks it, the demo's own activation line must supply it.
    bindir = str(Path(sys.executable).parent)
    env = _env()
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != bindir)
    out = run_cli("demo", "--runs", "4", cwd=tmp_path, env=env, check=True).stdout
    lines = out.split("Explore it, in this shell:\n", 1)[1].splitlines()
    commands = [line.strip() for line in lines if line.strip()]
    if (Path(bindir) / "activate").exists():
        assert commands[0].startswith(". ") and "activate" in commands[0]
    script = ["set -e"]
    for cmd in commands:
        if cmd.startswith("flightlog serve"):
            continue  # a server in the foreground: tests/integration/test_examples.py runs one
        script.append(f"echo {shlex.quote('$ ' + cmd)}")
        script.append(cmd)
    p = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "root cause step 2 search_policy" in p.stdout
    # why's alternatives score higher than the chosen cause: the header says why.
    assert "alternatives (evidence score; the root cause is the earliest step" in p.stdout
    assert "Traceback" not in p.stderr
    incidents = [line for line in p.stdout.splitlines() if line.startswith("#1 ")]
    assert incidents, p.stdout
    # The ownership it suggests explaining names the team the demo paged, not the rules'.
    assert "search-team   PAGED" in out
    explained = p.stdout.split("$ flightlog owners explain", 1)[1]
    assert "step 'search_policy': owned by search-team" in explained
    assert "also matched (overridden): rule(s) 1, 2" in explained


def test_commands_named_in_the_demo_and_its_postmortem_exist(tmp_path: Path) -> None:
    import re

    from flightlog.cli.main import COMMANDS

    out = run_cli("demo", "--runs", "4", cwd=tmp_path, env=_env(), check=True).stdout
    home = tmp_path / "flightlog-demo"
    rid = run_cli("runs", "--status", "failed", "-q", cwd=home, env=_env(), check=True).stdout
    report = run_cli("report", rid.strip(), "--format", "md", cwd=home, env=_env(), check=True)
    named = set(re.findall(r"\bflightlog ([a-z][a-z-]+)", out + report.stdout))
    named -= {"demo", "toml"}  # "flightlog demo" is the command itself; flightlog.toml a file
    assert named and named <= set(COMMANDS), named - set(COMMANDS)
