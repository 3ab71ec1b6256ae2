"""Two real ``flightlog serve`` processes on the test PostgreSQL database (the
two-servers tests)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.pg_scaleout import Server, start_servers  # noqa: E402


@pytest.fixture
def servers(pg_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    env = {"FLIGHTLOG_LEDGER_KEY": str(tmp_path / "ledger.key")}
    started = start_servers(pg_url, 2, tmp_path, env)
    try:
        yield started
    finally:
        for s in started:
            s.stop()
