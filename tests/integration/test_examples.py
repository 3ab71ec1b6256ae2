"""The runnable examples in examples/, each run as a user would, against real components:
the plain agent into a SQLite file, the OpenTelemetry agent into a real ``flightlog serve``,
and examples/flightlog.toml paging the example webhook receiver."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, run_cli
from tests.integration.server.conftest import ServerProcess, free_port

EXAMPLES = REPO / "examples"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTLOG_", "OTEL_"))}
    return {**env, **extra}


def _python(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_readme_quickstart_is_the_example_file() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quickstart", 1)[1]
    block = re.search(r"```python\n(.*?)```", quick, re.S)
    assert block is not None
    source = (EXAMPLES / "quickstart.py").read_text(encoding="utf-8")
    assert block.group(1) == source.split('"""', 2)[2].lstrip("\n")


def test_quickstart_records_two_runs_into_flightlog_db_here(tmp_path: Path) -> None:
    p = _python("quickstart.py", tmp_path)
    assert p.returncode == 0, p.stderr
    assert "(succeeded)" in p.stdout and "(failed)" in p.stdout
    assert (tmp_path / "flightlog.db").exists()
    listed = json.loads(run_cli("runs", "--json", cwd=tmp_path, env=_env(), check=True).stdout)
    assert sorted(r["status"] for r in listed) == ["failed", "succeeded"]
    failed = next(r for r in listed if r["status"] == "failed")
    assert failed["reason"] == "not covered: no policy clause to cite"
    ids = run_cli("runs", "--status", "failed", "-q", cwd=tmp_path, env=_env(), check=True)
    assert ids.stdout.split() == [failed["id"]]
    # The check made between the two steps ("retrieval returned no documents") is the
    # evidence: the step that ended right before it is the root cause, not the last step.
    assert "root cause step 1 search_policy (agent retriever, owner search-team)" in p.stdout
    why = run_cli("why", failed["id"], "--json", cwd=tmp_path, env=_env(), check=True)
    att = json.loads(why.stdout)
    assert att["root_cause"]["name"] == "search_policy" and not att["hypothesis"]
    assert att["failure_point"]["name"] == "assess"


def test_quickstart_with_recording_off_says_so_and_creates_nothing(tmp_path: Path) -> None:
    """FLIGHTLOG_DISABLED=1: why() opened (so created) ./flightlog.db and failed with "no run
    with id ..."; it now says recording is off."""
    p = _python("quickstart.py", tmp_path, FLIGHTLOG_DISABLED="1")
    assert p.returncode == 1
    assert "ConfigurationError: recording is off ($FLIGHTLOG_DISABLED=1" in p.stderr
    assert sorted(tmp_path.iterdir()) == []


def test_quickstart_replays_from_its_directory_with_the_console_script(tmp_path: Path) -> None:
    """README: `flightlog replay RUN --entry examples.quickstart:triage --override ...` from
    the clone. The `flightlog` script (not `python -m`, which puts the current directory on
    sys.path by itself) imports the entry from the current directory, and importing the
    quickstart records nothing of its own."""
    import shutil

    (tmp_path / "examples").mkdir()
    shutil.copy(EXAMPLES / "quickstart.py", tmp_path / "examples" / "quickstart.py")
    p = subprocess.run(
        [sys.executable, "examples/quickstart.py"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    failed = run_cli("runs", "-s", "failed", "-q", cwd=tmp_path, env=_env(), check=True).stdout
    script = Path(sys.executable).parent / "flightlog"
    fix = 'search_policy=["HS-7 Storm damage to the roof is covered."]'
    argv = ["replay", failed.strip(), "--entry", "examples.quickstart:triage", "--override", fix]
    # This tree's code, and no empty entry (which would put the current directory on the path).
    env = _env(PYTHONPATH=str(REPO / "src"))
    r = subprocess.run(
        [str(script), *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "the failure disappears with this correction" in r.stdout
    listed = json.loads(run_cli("runs", "--json", cwd=tmp_path, env=_env(), check=True).stdout)
    assert sorted(x["status"] for x in listed) == ["failed", "succeeded", "succeeded"]


def test_quickstart_sending_to_flightlog_serve_asks_the_server_why(tmp_path: Path) -> None:
    """$FLIGHTLOG_URL a server with keys, $FLIGHTLOG_API_KEY an admin key (it sends and reads):
    flightlog.why() in the quickstart answers from the server."""
    from flightlog.access.keys import create_key
    from flightlog.app import open_store

    srv = ServerProcess(db=tmp_path / "server.db", port=free_port())
    store = open_store(srv.store_url)
    try:
        _, key = create_key(store, "quickstart", "admin", "default")
    finally:
        store.close()
    try:
        srv.start()
        spool = str(tmp_path / "spool")
        p = _python(
            "quickstart.py",
            tmp_path,
            FLIGHTLOG_URL=srv.url,
            FLIGHTLOG_API_KEY=key,
            FLIGHTLOG_SPOOL_DIR=spool,
        )
    finally:
        srv.stop()
    assert p.returncode == 0, p.stderr
    assert "root cause step 1 search_policy (agent retriever, owner search-team)" in p.stdout
    assert not (tmp_path / "flightlog.db").exists()


def test_otel_agent_sends_its_traces_to_flightlog_serve(tmp_path: Path) -> None:
    srv = ServerProcess(db=tmp_path / "server.db", port=free_port())
    try:
        srv.start()
        endpoint = f"{srv.url}/v1/traces"
        p = _python("otel_agent.py", tmp_path, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint)
        assert p.returncode == 0, p.stderr
        assert f"sent 2 traces to {endpoint}" in p.stdout
    finally:
        srv.stop()
    listed = json.loads(run_cli("runs", "--db", srv.store_url, "--json", check=True).stdout)
    assert sorted(r["status"] for r in listed) == ["failed", "succeeded"]
    failed = next(r for r in listed if r["status"] == "failed")
    assert failed["workflow"] == "claims-triage"  # the GenAI span name without its operation
    shown = json.loads(
        run_cli("show", failed["id"], "--db", srv.store_url, "--json", check=True).stdout
    )
    kinds = {s["name"]: s["kind"] for s in shown["steps"]}
    assert kinds["search_policy"] == "tool" and kinds["chat stand-in-1"] == "llm"


def test_example_config_pages_the_example_webhook_receiver(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "flightlog.toml"
    text = (EXAMPLES / "flightlog.toml").read_text(encoding="utf-8")
    assert "http://127.0.0.1:8765/alerts" in text
    config.write_text(text.replace(":8765/", f":{port}/"), encoding="utf-8")
    receiver = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLES / "webhook_receiver.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert receiver.stdout is not None
        assert "receiving webhooks" in receiver.stdout.readline()
        p = _python("quickstart.py", tmp_path, FLIGHTLOG_CONFIG=str(config))
        assert p.returncode == 0, p.stderr
    finally:
        receiver.terminate()
        out, _ = receiver.communicate(timeout=30)
    # One page (the root cause's owner) and one notification (the workflow's owner).
    firing = [line for line in out.splitlines() if "[firing]" in line]
    assert len(firing) == 2, out
    assert all(line.startswith("/alerts [firing]") for line in firing)
    # Which is which: the page goes to the root cause's owner (search_policy's code owner,
    # search-team: the check made right after it failed), the notice to the workflow's.
    assert any("to search-team (root_cause):" in line for line in firing), out
    assert any("to claims-team (workflow_owner):" in line for line in firing), out
    incidents = run_cli("incidents", "--json", cwd=tmp_path, env=_env(), check=True)
    assert len(json.loads(incidents.stdout)) == 1
