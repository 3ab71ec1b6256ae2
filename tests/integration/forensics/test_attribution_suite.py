"""The attribution suite: every scenario of tests/scenarios.py, recorded with the
SDK into a temporary SQLite store, must be attributed to its injected fault."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.scenarios import CATEGORIES, SCENARIOS, Outcome, run_suite


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    db: Path = tmp_path_factory.mktemp("suite") / "suite.db"
    yield {o.scenario.name: o for o in run_suite(f"sqlite:///{db}")}


def test_suite_covers_the_issue() -> None:
    assert len(SCENARIOS) >= 40
    assert {s.category for s in SCENARIOS} == set(CATEGORIES)
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)
    assert len({s.workflow for s in SCENARIOS}) >= 5


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(s.name, marks=pytest.mark.xfail(strict=True, reason=s.note))
        if s.known_miss
        else s.name
        for s in SCENARIOS
    ],
)
def test_scenario_attributed_to_injected_fault(outcomes: dict[str, Outcome], name: str) -> None:
    o = outcomes[name]
    assert o.status == "failed"
    att = o.attribution
    assert att["failed"] is True and att["failure_point"] is not None
    assert (o.got_index, o.got_step, o.got_agent) == (
        o.expected_index,
        o.scenario.step,
        o.scenario.agent,
    ), att["summary"]
    assert att["chain"][0]["name"] == o.scenario.step
    assert att["chain"][-1]["id"] == att["failure_point"]["id"]
    assert att["evidence"] and 0 < att["confidence"] <= 1


def test_targets(outcomes: dict[str, Outcome]) -> None:
    results = list(outcomes.values())
    step_acc = sum(o.step_ok for o in results) / len(results)
    assert step_acc >= 0.95
    raising = [o for o in results if o.scenario.raises_or_checks]
    assert raising and all(o.step_ok for o in raising)
