"""The remote SDK delivers what it can before a short-lived script exits: after an outage, a
script's own records go to the server if it is up, the spool drains at exit within the exit
timeout, ``flush()`` says whether everything was delivered, and the exit names what is still
spooled. A real ``flightlog serve``, real scripts in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli
from tests.integration.server.conftest import ServerProcess, free_port

SCRIPT = """
import sys
import flightlog

flightlog.configure(sys.argv[1], spool_dir=sys.argv[2])
with flightlog.run(sys.argv[3], owner="qa") as run:
    with flightlog.step("only-step", kind="tool"):
        pass
print(run.id)
print("flush", flightlog.flush(timeout=20))
"""


def _script(tmp_path: Path, url: str, spool: Path, workflow: str) -> tuple[str, bool, str]:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")}
    env["FLIGHTLOG_EXIT_TIMEOUT"] = "30"
    p = subprocess.run(
        [sys.executable, str(script), url, str(spool), workflow],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert p.returncode == 0, p.stderr
    run_id, flushed = p.stdout.split()[0], p.stdout.split()[-1] == "True"
    return run_id, flushed, p.stderr


def _runs(srv: ServerProcess) -> set[str]:
    out = run_cli("runs", "--db", srv.store_url, "-q", "-n", "1000", check=True).stdout
    return set(out.split())


def test_a_script_after_an_outage_delivers_its_own_records_and_the_backlog(
    tmp_path: Path,
) -> None:
    server_factory = ServerProcess(db=tmp_path / "server.db", port=free_port())
    try:
        _outage_then_recovery(server_factory, tmp_path)
    finally:
        server_factory.stop()


def _outage_then_recovery(server_factory: ServerProcess, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    # 1. The server is down: the script's records are spooled; flush() says they were not
    #    delivered, and the exit says what is still spooled and where.
    offline, flushed, stderr = _script(tmp_path, server_factory.url, spool, "during-outage")
    assert flushed is False
    assert "still spooled in" in stderr and str(spool) in stderr
    assert "the next process that configures" in stderr
    assert list(spool.glob("*.otlp"))
    # 2. The server is up: a short-lived script sends its own records and, before it exits,
    #    the backlog an earlier process left; flush() is True because everything arrived.
    srv = server_factory.start()
    online, flushed, stderr = _script(tmp_path, srv.url, spool, "after-outage")
    assert flushed is True, stderr
    assert "still spooled" not in stderr
    assert not list(spool.glob("*.otlp"))
    assert {offline, online} <= _runs(srv)
    shown = json.loads(run_cli("show", offline, "--db", srv.store_url, "--json").stdout)
    assert shown["run"]["workflow"] == "during-outage" and shown["run"]["status"] == "succeeded"
