"""flightlog.toml is read and validated once per change, not once per ended run: detectors,
budgets, attribution and the response engine share one loaded configuration, and an edited
file is picked up by the next ended run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import flightlog
from flightlog.app import open_store
from flightlog.config import LOADER, load_config
from flightlog.respond.config import load_respond_config
from flightlog.respond.incidents import list_incidents

from .conftest import Receiver, claims_run, write_config

ROUTE0 = 'group_wait = "0s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'


def test_parsed_once_for_many_ended_runs_and_again_when_edited(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "flightlog.toml", receiver, route=ROUTE0)
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(config))
    db = tmp_path / "flightlog.db"
    parses = LOADER.parses
    flightlog.configure(f"sqlite:///{db}")  # validates the file: the one parse
    try:
        first = load_respond_config()
        for i in range(5):
            claims_run(f"claim {i}")
        claims_run("strict", strict=True)
        assert flightlog.flush(30)  # six runs ended: detected, attributed, alerted
        assert LOADER.parses == parses + 1
        assert load_respond_config() is first  # validated once: the same object
        assert load_config() is load_config()  # and not copied per call

        # Edit the file: claims workflows now belong to platform. The next run reads it.
        time.sleep(0.01)  # a modification time the file system can tell apart
        config.write_text(
            config.read_text().replace(
                'workflow = "claims*"\nteam = "claims-team"',
                'workflow = "claims*"\nteam = "platform"',
            )
        )
        claims_run("strict", strict=True, workflow="claims-intake")
        assert flightlog.flush(30)
    finally:
        flightlog.shutdown()
    assert LOADER.parses == parses + 2
    assert load_respond_config() is not first
    store = open_store(f"sqlite:///{db}")
    try:
        with store.transaction() as tx:
            teams = {i.workflow: i.workflow_team for i in list_incidents(tx)}
    finally:
        store.close()
    assert teams == {"claims-triage": "claims-team", "claims-intake": "platform"}
