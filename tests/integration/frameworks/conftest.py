"""Fixtures of the real-framework suite: the scripted OpenAI-compatible endpoint, and one
``flightlog serve`` with its own store per framework, fed by that framework's app."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.frameworks import fake_llm
from tests.integration.server.conftest import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def llm() -> Iterator[str]:
    with fake_llm.serve() as url:
        yield url


@dataclass
class AppRun:
    """One framework app's run of every scenario against its own server."""

    framework: str
    server: ServerProcess
    output: str
    llm_tokens: int  # what the endpoint reported as usage while this app ran
    spans_exported: int = 0
    lines: list[str] = field(default_factory=list)


def run_app(framework: str, command: list[str], llm: str, tmp: Path) -> AppRun:
    """Start a server, run ``command LLM_URL OTLP_URL [RECORD_DIR]``, stop the server
    (so every run-end hook has finished) and return what happened."""
    server = ServerProcess(db=tmp / f"{framework}.db", port=free_port()).start()
    before = fake_llm.tokens_served()
    record = os.environ.get("FLIGHTLOG_RECORD_OTLP")
    argv = [*command, llm, server.url] + ([record] if record else [])
    try:
        proc = subprocess.run(
            argv,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "false"},
        )
    finally:
        server.stop()
    assert proc.returncode == 0, f"{framework} app failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    lines = proc.stdout.splitlines()
    exported = [int(x.split(":")[1]) for x in lines if x.startswith("spans exported:")]
    return AppRun(
        framework=framework,
        server=server,
        output=proc.stdout,
        llm_tokens=fake_llm.tokens_served() - before,
        spans_exported=exported[0] if exported else -1,
        lines=lines,
    )
