"""The run-end pipeline stages each ended run once: detectors run once, the attribution is
computed once, stored and audited, and the alert carries that audited attribution."""

from __future__ import annotations

import base64
import random
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import flightlog
from flightlog import pipeline
from flightlog.app import open_store
from flightlog.detect.registry import unregister
from flightlog.ledger.entry import COMMIT, commitment, get_path, set_path
from flightlog.respond.clock import ManualClock
from flightlog.respond.config import load_respond_config
from flightlog.respond.engine import Engine

from .conftest import Receiver, claims_run, write_config

ROUTE0 = 'group_wait = "0s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'


@pytest.fixture
def counted() -> Iterator[Counter[str]]:
    """A user detector that counts how often it ran on each run (and finds nothing)."""
    calls: Counter[str] = Counter()

    @flightlog.detector(name="counting")
    def counting(run: Any) -> list[Any]:
        calls[run.run.id] += 1
        return []

    yield calls
    unregister("counting")


def _audited(db: Path, run_id: str) -> dict[str, Any]:
    """The attribution the ledger holds for ``run_id``, its committed values opened (each
    checked against its commitment)."""
    conn = sqlite3.connect(db)
    try:
        entry, openings = conn.execute(
            "SELECT entry, openings FROM ledger_entries WHERE kind = 'attribution' AND run_id = ?",
            (run_id,),
        ).fetchone()
    finally:
        conn.close()
    data: dict[str, Any] = orjson.loads(entry)["data"]
    for path, salt, value in orjson.loads(openings) if openings else []:
        assert get_path(data, tuple(path)) == {COMMIT: commitment(base64.b64decode(salt), value)}
        set_path(data, tuple(path), value)
    return data


def _alerts_for(receiver: Receiver, run_id: str) -> list[dict[str, Any]]:
    """Every alert about ``run_id`` received, in any channel's format (webhook annotations,
    PagerDuty custom details)."""
    found: list[dict[str, Any]] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            if v.get("run_id") == run_id and "root_cause" in v and "confidence" in v:
                found.append(v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for r in receiver.requests:
        walk(r.body)
    return found


def test_detectors_run_once_per_ended_run(
    tmp_path: Path, receiver: Receiver, counted: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "flightlog.toml", receiver, route=ROUTE0)
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(config))
    db = tmp_path / "flightlog.db"
    flightlog.configure(f"sqlite:///{db}")
    try:
        ok = [claims_run(f"claim {i}") for i in range(4)]
        failed = [claims_run(f"flooded basement {i}", broken=True) for i in range(2)]
        failed.append(claims_run("strict", strict=True))
        assert flightlog.flush(30)  # durable, and the run-end pipeline has run
    finally:
        flightlog.shutdown()
    assert dict(counted) == {rid: 1 for rid in ok + failed}
    for rid in failed:
        audited = _audited(db, rid)
        alerts = _alerts_for(receiver, rid)
        if not alerts:  # joined an open incident of the same fingerprint: no new page
            continue
        for notes in alerts:
            rc = audited["root_cause"]
            assert notes["root_cause"].startswith(f"step {rc['index']} {rc['name']}")
            assert notes["confidence"] == f"{float(audited['confidence']):.2f}"
            assert notes["evidence"] == "; ".join(str(e) for e in audited["evidence"][:3])
    assert any(_alerts_for(receiver, rid) for rid in failed)


def test_the_alert_carries_the_audited_attribution(
    tmp_path: Path, receiver: Receiver, counted: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attributed when the run ended (no alerting configured in the recording process);
    later a new detector would blame another step. The alert sent afterwards by another
    process still carries the attribution the ledger holds, and no detector runs again."""
    monkeypatch.delenv("FLIGHTLOG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "flightlog.db"
    flightlog.configure(f"sqlite:///{db}")
    try:
        for i in range(4):
            claims_run(f"claim {i}")
        rid = claims_run("strict", strict=True)  # the validator fails by itself
        assert flightlog.flush(30)
    finally:
        flightlog.shutdown()
    audited = _audited(db, rid)
    assert audited["root_cause"]["name"] == "validate_claim"
    before = sum(counted.values())

    @flightlog.detector(name="second_opinion")
    def second_opinion(run: Any) -> list[Any]:
        step = next(s for s in run.steps if s.name == "search_policy")
        return [run.finding("second_opinion", "bad", "retrieval was wrong", step=step)]

    try:
        config = write_config(tmp_path / "f.toml", receiver, route=ROUTE0)
        store = open_store(f"sqlite:///{db}")
        engine = Engine(
            store,
            load_respond_config(config, environ={}),
            clock=ManualClock(),
            rng=random.Random(7),
        )
        engine.process_runs(engine.pending_runs())
        engine.tick()
        store.close()
    finally:
        unregister("second_opinion")
    alerts = _alerts_for(receiver, rid)
    assert alerts
    for notes in alerts:
        assert notes["root_cause"].startswith("step 3 validate_claim")
        assert notes["confidence"] == f"{float(audited['confidence']):.2f}"
    assert sum(counted.values()) == before  # the engine did not detect again


def test_registered_work_sees_the_staged_runs(tmp_path: Path) -> None:
    seen: list[tuple[str, str, bool, int]] = []

    @pipeline.on_run_end
    def record(ended: pipeline.RunsEnded) -> None:
        for e in ended.runs:
            seen.append((e.run.id, e.run.status, e.attribution is not None, len(e.findings)))

    flightlog.configure(f"sqlite:///{tmp_path / 'flightlog.db'}")
    try:
        ok = claims_run("claim")
        bad = claims_run("strict", strict=True)
        assert flightlog.flush(30)
    finally:
        flightlog.shutdown()
        pipeline.unregister(record)
    by_id = {rid: (status, attributed, n) for rid, status, attributed, n in seen}
    assert by_id[ok][:2] == ("succeeded", False)
    assert by_id[bad][:2] == ("failed", True) and by_id[bad][2] >= 1


def test_periodic_work_runs_when_its_interval_has_passed(tmp_path: Path) -> None:
    ticks: list[pipeline.Tick] = []

    @pipeline.every(10)
    def job(tick: pipeline.Tick) -> None:
        ticks.append(tick)

    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        clock = pipeline.Clock(store, respond=False)
        for now in (100.0, 105.0, 110.0, 119.0, 121.0):
            clock.run_due(now=now)
    finally:
        pipeline.unregister(job)
        store.close()
    assert len(ticks) == 3  # at 100, 110 and 121
    assert all(t.store is store for t in ticks)
