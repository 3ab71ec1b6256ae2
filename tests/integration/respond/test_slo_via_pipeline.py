"""SLO burn-rate alerts reach the response engine through the pipeline (the respond stage at
run end and the clock's tick), which hands the evaluation in: the response layer does not
import the reliability layer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightlog import pipeline
from flightlog.app import open_store
from tests.conftest import run_cli
from tests.integration.reliability.test_slo_burn import MIN, runs

from .conftest import Receiver


@pytest.fixture
def slo_config(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "flightlog.toml"
    cfg.write_text(
        f"""
[teams.platform]
channels = ["ops-tickets"]
pager = ["ops-pager"]

[[owners]]
team = "platform"

[channels.ops-pager]
type = "webhook"
url = "{receiver.url("/ops-pager")}"

[channels.ops-tickets]
type = "webhook"
url = "{receiver.url("/ops-tickets")}"

[route]
group_wait = "0s"

[[slo]]
workflow = "claims"
target = 0.99
"""
    )
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(cfg))
    return cfg


@pytest.fixture
def burning(tmp_path: Path, slo_config: Path) -> Iterator[object]:
    """A store where the claims SLO burns its budget fast (20 of the last 120 runs failed)."""
    store = open_store(f"sqlite:///{tmp_path / 'slo.db'}")
    now = time.time_ns()
    runs(store, "claims", "succeeded", 100, now - 50 * MIN)
    runs(store, "claims", "failed", 20, now - 2 * MIN, step_status="error")
    yield store
    store.close()


def _paged(receiver: Receiver) -> list[str]:
    return [
        a["labels"]["slo"]
        for r in receiver.delivered("/ops-pager")
        for a in r.body["alerts"]
        if "slo" in a["labels"]
    ]


def test_the_clock_tick_evaluates_slos_then_delivers(burning: object, receiver: Receiver) -> None:
    pipeline.respond_tick(pipeline.Tick(burning, time.time_ns()))
    assert _paged(receiver) == ["claims"]
    assert receiver.delivered("/ops-tickets")  # the 3d/6h rule opens a ticket as well


def test_the_run_end_stage_evaluates_slos_then_delivers(
    burning: object, receiver: Receiver
) -> None:
    pipeline.respond(pipeline.RunsEnded(burning, []))
    assert _paged(receiver) == ["claims"]


def test_flightlog_watch_evaluates_slos_on_each_pass(
    tmp_path: Path, slo_config: Path, burning: object, receiver: Receiver
) -> None:
    """``flightlog watch`` hands the SLO evaluation (with the hourly counts) to its engine."""
    out = run_cli(
        "watch", "--once", "--db", f"sqlite:///{tmp_path / 'slo.db'}", "--config", str(slo_config)
    )
    assert out.returncode == 0, out.stderr
    assert _paged(receiver) == ["claims"]
    # Listed and shown as a burning budget, not as a run that "fails at" a step.
    db = f"sqlite:///{tmp_path / 'slo.db'}"
    listed = run_cli("incidents", "--db", db, check=True).stdout
    slo_rows = [line for line in listed.splitlines() if "SLO claims burning (page)" in line]
    assert slo_rows and not any("fails at" in line for line in slo_rows), listed
    number = slo_rows[0].split()[0].lstrip("#")
    shown = run_cli("incident", "show", number, "--db", db, check=True).stdout
    assert "SLO claims (" in shown and "is burning its error budget" in shown
    assert "(the SLO's owner)" in shown and "confidence" not in shown
