"""PostgreSQL: maintenance transactions are re-run after a deadlock, like record writes.

A real deadlock on the real server: another connection takes a table lock the maintenance
call needs, waits until the call (holding the ledger's tree head row) queues for it, then
asks for the tree head row itself: opposite lock order. The maintenance call's backend
runs the deadlock check first (the other session's ``deadlock_timeout`` is longer), so
PostgreSQL aborts the maintenance transaction; the call retries and succeeds once the
other connection has committed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flightlog.ledger import attach
from flightlog.ledger.redact import redact_run
from flightlog.ledger.retention import prune
from flightlog.model import Batch, Run
from tests.conftest import run_cli
from tests.integration.ledger._ledger_helpers import rid, run_batches
from tests.integration.ledger.test_ledger_sequencing import _hold_integrator_role
from tests.integration.store.test_pg_partitions import step

DAY = 86_400 * 10**9


def _deadlocked(url: str, table: str, call: Any) -> tuple[Any, BaseException | None]:
    """Run ``call()`` in a thread while another connection locks ``table`` and then the
    tree head row; (what ``call`` returned or raised, the other connection's error)."""
    import psycopg

    other = psycopg.connect(url)
    watcher = psycopg.connect(url, autocommit=True)
    try:
        other.execute("SET deadlock_timeout = '20s'")  # the maintenance side checks first
        other.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        out: dict[str, Any] = {}

        def run() -> None:
            try:
                out["value"] = call()
            except BaseException as exc:  # reported below
                out["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = to_regclass(%s)",
                (table,),
            ).fetchone()
            if row and row[0]:
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"the maintenance call never waited for {table}")
        other_error: BaseException | None = None
        try:
            other.execute("SELECT size FROM ledger_state WHERE id = 1 FOR UPDATE")
            other.commit()
        except psycopg.errors.DeadlockDetected as exc:
            other_error = exc
            other.rollback()
        thread.join(timeout=120)  # a liveness bound
        assert not thread.is_alive()
        if "error" in out:
            raise out["error"]
        return out.get("value"), other_error
    finally:
        other.close()
        watcher.close()


@pytest.fixture
def ledger_store(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from flightlog.app import open_store

    for var in ("FLIGHTLOG_LEDGER", "FLIGHTLOG_LEDGER_RETENTION_DAYS", "FLIGHTLOG_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLIGHTLOG_LEDGER_KEY", str(tmp_path / "ledger.key"))
    store = open_store(pg_url)
    role = _hold_integrator_role(pg_url)  # the test integrates: no background integration
    try:
        yield store
    finally:
        role.release()
        store.close()


@pytest.mark.parametrize("which", ["checkpoint", "integrate", "prune", "redact"])
def test_a_maintenance_transaction_aborted_by_a_deadlock_is_retried(
    pg_url: str, ledger_store: Any, which: str
) -> None:
    store = ledger_store
    ledger = attach(store)
    now = time.time_ns()
    old = "0a" * 16
    store.write(
        Batch(
            runs=[Run(id=old, workflow="w", started_ns=now - 400 * DAY, status="succeeded")],
            steps=[step(old, "1" * 16, now - 400 * DAY)],
        )
    )
    for b in run_batches(rid(1), secret="someone"):
        store.write(b)
    if which != "integrate":
        ledger.integrate_pending()
    calls: dict[str, tuple[str, Any]] = {
        "checkpoint": ("ledger_checkpoints", ledger.checkpoint),
        "integrate": ("ledger_entries", ledger.integrate),
        "prune": ("run_days", lambda: prune(ledger, now - 200 * DAY)),
        "redact": ("ledger_entries", lambda: redact_run(ledger, rid(1))),
    }
    table, call = calls[which]
    retries = store.retries
    value, other_error = _deadlocked(pg_url, table, call)
    assert other_error is None  # PostgreSQL aborted the maintenance transaction ...
    assert store.retries > retries  # ... and it ran again
    if which == "checkpoint":
        assert value.size >= 2
    elif which == "integrate":
        assert value > 0 and ledger.pending() == 0
    elif which == "prune":
        assert value.runs == 1 and store.get_run(old) is None
    else:
        assert value.entries > 0
    ledger.integrate_pending()
    verified = run_cli("audit", "verify", "--db", pg_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
