"""`flightlog audit prune`: refused inside the retention window, and the log still verifies."""

from __future__ import annotations

import json
import time

import flightlog
from flightlog.model import Batch, Run, Step
from tests.conftest import run_cli

DAY = 86_400 * 10**9


def test_prune_cli_refuses_inside_the_window_and_keeps_the_log_valid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = flightlog.open_store(url)
    now = time.time_ns()
    old, new = "a" * 32, "b" * 32
    store.write(
        Batch(
            runs=[
                Run(id=old, workflow="w", started_ns=now - 400 * DAY, status="succeeded"),
                Run(id=new, workflow="w", started_ns=now - DAY, status="succeeded"),
            ],
            steps=[
                Step(
                    run_id=old,
                    id="1" * 16,
                    name="s",
                    kind="tool",
                    index=1,
                    started_ns=now - 400 * DAY,
                )
            ],
        )
    )
    store.close()

    refused = run_cli("audit", "prune", "--before", "30d", "--db", url)
    assert refused.returncode == 1 and "retention window" in refused.stderr

    done = run_cli("audit", "prune", "--before", "300d", "--db", url, "--json", check=True)
    assert json.loads(done.stdout)["runs"] == 1

    runs = json.loads(run_cli("runs", "--db", url, "--json", check=True).stdout)
    assert [r["id"] for r in runs] == [new]
    verified = run_cli("audit", "verify", "--db", url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
