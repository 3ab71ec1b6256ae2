"""The README as a new user meets it: clone the repository into a temporary folder and run the
README's set-up and example commands in order, as written, in one shell.

Every ```sh block of README.md runs, in order, in one ``bash -e`` session whose PATH does not
hold Flightlog (so the README's own activation line must put it there). Three deliberate
departures, each because the machine is shared: ``make test`` is not run (it runs this test);
the server and the example webhook receiver get free ports instead of 4318 and 8765 (in the
clone's README commands, examples/flightlog.toml and the exporter's endpoint). pip uses the
machine's caches and wheel folders as any install on it does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.server.conftest import free_port

pytestmark = pytest.mark.slow


def readme_shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


def test_readme_commands_run_in_order_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "flightlog"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
        check=True,
        capture_output=True,
    )
    blocks = readme_shell_blocks((clone / "README.md").read_text(encoding="utf-8"))
    assert blocks and blocks[0].lstrip().startswith("make demo")
    server_port, hook_port = free_port(), free_port()
    lines = ["set -euo pipefail"]
    for block in blocks:
        for line in block.splitlines():
            if not line.strip() or line.strip().startswith("make test"):
                continue
            line = line.replace("flightlog serve &", f"flightlog serve --port {server_port} &")
            line = line.replace(":8765", f":{hook_port}").replace(
                "webhook_receiver.py &", f"webhook_receiver.py {hook_port} &"
            )
            lines += [f"echo '$ '{_quote(line)}", line]
    config = clone / "examples" / "flightlog.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(":8765/", f":{hook_port}/"), encoding="utf-8"
    )
    bindir = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLIGHTLOG_", "OTEL_", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != bindir)
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"http://127.0.0.1:{server_port}/v1/traces"
    p = subprocess.run(
        ["bash", "-c", "\n".join(lines)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = p.stdout[-4000:] + "\n--- stderr ---\n" + p.stderr[-4000:]
    assert p.returncode == 0, tail
    assert "Traceback" not in p.stderr, tail
    out = p.stdout
    assert "20 succeeded, 1 failed" in out
    assert "root cause step 2 search_policy" in out  # flightlog why, in the demo's directory
    assert "recorded run" in out and "(failed)" in out  # the quickstart
    assert "root cause step 1 search_policy" in out  # its why: the check after that step
    assert "the failure disappears with this correction" in out  # its replay
    assert "sent 2 traces" in out  # the OpenTelemetry example reached the server
    assert (clone / "flightlog-demo" / "flightlog.db").exists()


def _quote(line: str) -> str:
    return "'" + line.replace("'", "'\"'\"'") + "'"
