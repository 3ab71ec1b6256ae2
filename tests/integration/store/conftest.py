"""Two real ``flightlog serve`` processes on one PostgreSQL database, started once for the
two-servers tests (``test_pg_two_servers_*.py``): each test sends traces of its own (trace
ids no other test uses) and checks only those, so they share the servers' start and stop
(seconds each: the stop lets the run-end worker finish its batch)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_pg_database

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.pg_scaleout import Server, start_servers, stop_all  # noqa: E402


@pytest.fixture(scope="package")
def two_servers_pg_url() -> Iterator[str]:
    yield from fresh_pg_database()


@pytest.fixture(scope="package")
def servers(
    two_servers_pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    workdir = tmp_path_factory.mktemp("two-servers")
    env = {"FLIGHTLOG_LEDGER_KEY": str(workdir / "ledger.key")}
    started = start_servers(two_servers_pg_url, 2, workdir, env)
    try:
        yield started
    finally:
        stop_all(started)
