"""Shared fixtures: a fresh SQLite store per test, the SDK configured to it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

import flightlog

REPO = Path(__file__).resolve().parents[1]

# Property tests: the suite runs the same generated examples every time (a CI gate must not
# pass or fail by the draw), and ignores examples saved by earlier local runs. To search for
# new failing cases instead: HYPOTHESIS_PROFILE=explore (random draws, saved examples replayed).
# No deadline in either: a slow example on a loaded machine is not a failure.
settings.register_profile("suite", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


def pytest_configure(config: pytest.Config) -> None:
    """Ledger signing keys and witnesses go to the user's configuration directory by
    default: give the test session (and the processes it starts) one of its own."""
    if not os.environ.get("FLIGHTLOG_TEST_KEEP_CONFIG_HOME"):
        import tempfile

        os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="flightlog-test-config-")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'flightlog.db'}"


@pytest.fixture
def recorder(db_url: str) -> Iterator[str]:
    """The SDK configured to a fresh store; yields its URL; shuts the writer down after."""
    flightlog.configure(db_url)
    yield db_url
    flightlog.shutdown()


@pytest.fixture
def store(recorder: str) -> Iterator[object]:
    s = flightlog.open_store(recorder)
    yield s
    s.close()


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m flightlog ARGS`` in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "flightlog", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"flightlog {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


_pg_unreachable: list[str | None] = []


def fresh_pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (``flightlog_test_<random>``) for a fixture to yield,
    dropped after; skips, saying why, when the server cannot be used."""
    from tests import pg

    if not _pg_unreachable:
        _pg_unreachable.append(pg.unreachable_reason())
        if not _pg_unreachable[0]:
            pg.sweep_stale()
    if _pg_unreachable[0]:
        pytest.skip(_pg_unreachable[0])
    with pg.temporary_database() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database (``flightlog_test_<random>``), dropped after."""
    yield from fresh_pg_database()
