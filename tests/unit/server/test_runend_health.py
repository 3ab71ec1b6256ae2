"""The run-end worker's health as /readyz and the ingest stats report it
(``RunEndProcess.failing``), with real worker processes that die after some life.

A worker that lived longer than ``STABLE_S`` "started fine", which resets the restart delay;
it used to reset the count of deaths as well, so a worker that died on every batch, or in its
periodic work, after ten seconds of life was never reported as failing. Deaths now count until
a batch is answered, whatever each worker's age."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightlog.server import runend_worker
from flightlog.server.runend_worker import RunEndProcess, WorkerDied

DIES_LATER = """\
import os, sys, time
if "flightlog.server.runend_worker" in sys.orig_argv and "DIE_AFTER_S" in os.environ:
    time.sleep(float(os.environ["DIE_AFTER_S"]))
    sys.stderr.write("MemoryError: out of memory in a batch\\n")
    sys.stderr.flush()
    os._exit(7)
"""


@pytest.fixture
def dying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunEndProcess]:
    """A RunEndProcess whose workers die 0.6 s after they start (longer than a STABLE_S of
    0.3 s: each "started fine"), until DIE_AFTER_S is unset."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(DIES_LATER)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("DIE_AFTER_S", "0.6")
    monkeypatch.setattr(runend_worker, "STABLE_S", 0.3)
    proc = RunEndProcess(f"sqlite:///{tmp_path / 'flightlog.db'}", clock=False)
    try:
        yield proc
    finally:
        proc.close()


def _idle_until(proc: RunEndProcess, restarts: int, timeout: float = 60.0) -> None:
    """What the pipeline thread does while no run ends: ``check()`` about every second (here
    more often), which restarts a worker that died."""
    deadline = time.monotonic() + timeout
    while proc.restarts < restarts and time.monotonic() < deadline:
        proc.check()
        time.sleep(0.05)
    assert proc.restarts >= restarts, proc.restarts


def test_a_worker_dying_while_idle_after_it_started_fine_is_reported(
    dying: RunEndProcess,
) -> None:
    dying.start()
    _idle_until(dying, 2)
    assert dying.failing is None  # two deaths: not yet
    _idle_until(dying, 3)
    failing = dying.failing
    assert failing is not None
    assert "3 times" in failing and "status 7" in failing and "out of memory" in failing


def test_a_worker_dying_on_every_batch_is_reported(dying: RunEndProcess) -> None:
    dying.start()
    with pytest.raises(WorkerDied, match="3 run-end workers in a row died"):
        dying.run(["r" * 32])
    assert dying.failing is not None and "status 7" in dying.failing


def test_an_answered_batch_clears_it(dying: RunEndProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    dying.start()
    _idle_until(dying, 3)
    assert dying.failing is not None
    monkeypatch.delenv("DIE_AFTER_S")  # the next workers live
    report = dying.run(["r" * 32])  # a run the store does not hold: nothing to do
    assert report.errors == 0
    assert dying.failing is None and dying.failures == 0


def test_deaths_long_apart_are_not_a_failing_worker(
    dying: RunEndProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three deaths spread over more than FAILING_WINDOW_S (an OOM kill a day) are not."""
    monkeypatch.setattr(runend_worker, "FAILING_WINDOW_S", 0.5)  # deaths are >= 0.6 s apart
    dying.start()
    _idle_until(dying, 3)
    assert dying.failures >= 3
    assert dying.failing is None


SLOW_START = """\
import sys, time
if "flightlog.server.runend_worker" in sys.orig_argv:
    time.sleep(60)  # a worker still importing on a loaded machine
"""


def test_a_worker_still_starting_at_shutdown_is_stopped_without_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C on an idle `flightlog serve` whose worker had not finished starting used to log
    "run-end worker still busy at shutdown; abandoned": nothing was in hand, nothing lost."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_START)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    proc = RunEndProcess(f"sqlite:///{tmp_path / 'flightlog.db'}", clock=False)
    proc.start()
    pid = proc.pid
    assert pid is not None
    with caplog.at_level("DEBUG", logger=runend_worker.log.name):
        proc.close(timeout=0.2)
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped
