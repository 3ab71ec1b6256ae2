"""Counterfactual replay on the demo workflow: correcting the retrieval turns the failure
into success, and nothing is recorded while replaying."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flightlog
from flightlog import demo
from flightlog.errors import InputError, NotFoundError
from flightlog.sdk.replay import decisive_step, replay, replaying

CLAUSES = [{"id": "HS-4.1", "text": "Sudden and accidental escape of water is covered."}]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str]]:
    where = tmp_path_factory.mktemp("replay")
    result = demo.run_demo(f"sqlite:///{where / 'demo.db'}", n_ok=8, home=where / "demo")
    assert result.failed_run_id
    yield result.store, result.failed_run_id, result.run_ids[0]
    result.store.close()
    flightlog.shutdown()


def test_replay_as_recorded_fails_the_same_way(recorded: tuple[Any, str, str]) -> None:
    store, rid, _ = recorded
    runs_before = store.count_runs()
    r = replay(demo.triage, rid, store=store)
    assert r.status == "failed" and "assessment cites no policy clause" in (r.reason or "")
    assert [s["source"] for s in r.steps] == ["recorded", "recorded", "recorded", "recorded error"]
    assert store.count_runs() == runs_before  # nothing recorded


def test_correcting_the_retrieval_turns_failure_into_success(
    recorded: tuple[Any, str, str],
) -> None:
    store, rid, _ = recorded
    r = replay(demo.triage, rid, {"search_policy": CLAUSES}, store=store)
    assert r.succeeded, r.reason
    sources = {s["name"]: s["source"] for s in r.steps}
    assert sources["intake_claim"] == "recorded" and sources["search_policy"] == "override"
    assert sources["assess_coverage"] == "live (input changed)"
    assert sources["notify_customer"] == "live"
    assert r.output["verdict"]["cited"] == ["HS-4.1"]
    # The same override by occurrence and by step index.
    assert replay(demo.triage, rid, {"search_policy#1": CLAUSES}, store=store).succeeded
    assert replay(demo.triage, rid, {2: CLAUSES}, store=store).succeeded
    # Correcting the symptom instead does not help: validate_claim is not the cause.
    later = replay(
        demo.triage, rid, {"assess_coverage": {"covered": True, "cited_clauses": []}}, store=store
    )
    assert later.status == "failed"


def test_decisive_step_is_the_retrieval(recorded: tuple[Any, str, str]) -> None:
    store, rid, ok_run = recorded
    cf = decisive_step(demo.triage, store, rid)
    assert cf.decisive is not None and cf.decisive["step"] == "search_policy"
    assert cf.decisive["owner"] == "search-team"
    assert cf.tried[0] == {
        "step": "search_policy",
        "index": 2,
        "result": "succeeded",
        "reason": None,
    }
    with pytest.raises(InputError, match="needs a failed run"):
        decisive_step(demo.triage, store, ok_run)
    with pytest.raises(NotFoundError):
        replay(demo.triage, "f" * 32, store=store)


def test_top_level_replay_uses_the_configured_store(
    recorded: tuple[Any, str, str], tmp_path: Path
) -> None:
    store, rid, _ = recorded
    flightlog.configure(store.url)
    seen: list[bool] = []

    @flightlog.step(kind="tool")
    def probe(x: int) -> int:
        seen.append(replaying())
        return x

    r = flightlog.replay(lambda claim: probe(1), rid)
    assert r.succeeded and seen == [True] and not replaying()
