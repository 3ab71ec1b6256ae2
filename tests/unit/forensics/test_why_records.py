from __future__ import annotations

from typing import Any

import pytest
from records import RunBuilder, claims_run

from flightlog.errors import NotFoundError
from flightlog.forensics import Attribution, StepRef, why


def test_failed_run_blames_the_empty_retrieval(store: Any) -> None:
    for i in range(6):
        claims_run(store, n_docs=3 + i % 3)
    rid = claims_run(store, fault=True)
    att = why(store, rid)
    assert isinstance(att, Attribution)
    assert att.failed is True
    assert att.failure_point == StepRef(
        att.failure_point.id, 4, "validate_claim", "validator", "guardrail", "claims-team"
    )
    assert att.of_steps == 7
    assert att.root_cause is not None
    assert (att.root_cause.index, att.root_cause.name) == (2, "search_policy")
    assert att.root_cause.agent == "retriever" and att.root_cause.owner == "search-team"
    assert [s.index for s in att.chain] == [2, 3, 4]
    assert att.confidence >= 0.7 and not att.hypothesis
    assert "returned 0 items where it usually returns 3–5" in att.summary
    assert att.summary.startswith(
        "failed at step 4 of 7 (validate_claim); root cause step 2 "
        "search_policy (agent retriever, owner search-team)"
    )
    d = att.to_dict()
    assert d["root_cause"]["name"] == "search_policy"
    assert Attribution.from_dict(d).to_dict() == d
    assert any(a["step"]["name"] == "validate_claim" for a in d["alternatives"])


def test_of_steps_falls_back_to_history_median_then_seen(store: Any) -> None:
    for _ in range(3):
        claims_run(store, declared=None)
    rid = claims_run(store, fault=True, declared=None)
    assert why(store, rid).of_steps == 7


def test_no_history_gives_low_confidence_answer_that_says_why(store: Any) -> None:
    rid = claims_run(store, fault=True, declared=None)
    att = why(store, rid)
    assert att.failed and att.of_steps == 4
    assert any("successful run" in e for e in att.evidence)
    assert att.root_cause is not None


def test_succeeded_run_gets_no_blame(store: Any) -> None:
    rid = claims_run(store)
    att = why(store, rid)
    assert att.failed is False and att.root_cause is None and att.failure_point is None


def test_unknown_run_is_a_clear_error(store: Any) -> None:
    with pytest.raises(NotFoundError, match="no run"):
        why(store, "ffff")


def test_running_run_and_run_without_steps(store: Any) -> None:
    rid = RunBuilder("wf", status="running").write(store)
    att = why(store, rid)
    assert att.failed is False and "still running" in att.summary
    b = RunBuilder("wf", status="failed")
    b.reason = "crashed at import"
    rid2 = b.write(store)
    att2 = why(store, rid2)
    assert (
        att2.failed
        and att2.root_cause is None
        and "no step" in att2.summary + " ".join(att2.evidence)
    )
    assert att2.confidence == 0


def test_cyclic_lineage_is_walked_once(store: Any) -> None:
    from flightlog.model import Edge

    b = RunBuilder("cyc", status="failed")
    a = b.step("a", {"x": 1})
    c = b.step("b", {"x": 2}, fed_by=(a,))
    d = b.step("c", None, fed_by=(c,), error=("ValueError", "boom"))
    b.batch.edges.append(Edge(b.id, d.id, a.id, "data", "declared"))
    b.batch.edges.append(Edge(b.id, "feedfeedfeedfeed", a.id, "data", "declared"))
    rid = b.write(store)
    att = why(store, rid)
    assert att.root_cause is not None and att.root_cause.name == "c"
    assert any("cycle" in e for e in att.evidence)
    assert any("not in this run" in e for e in att.evidence)


def test_report_owners_come_from_owner_rules_when_code_names_none(
    store: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flightlog.forensics.report import postmortem

    cfg = tmp_path / "flightlog.toml"
    cfg.write_text(
        "[teams.platform]\nchannels = []\n\n[teams.data-team]\nchannels = []\n\n"
        '[[owners]]\nteam = "platform"\n\n[[owners]]\nworkflow = "wf"\n'
        'step = "fetch"\nteam = "data-team"\n'
    )
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(cfg))
    b = RunBuilder("wf", status="failed")
    b.step("fetch", None, error=("ValueError", "bad rows"))
    rid = b.write(store)
    owners = postmortem(store, rid)["owners"]
    assert owners["root_cause_step"] == "data-team (owners rule 2)"
    assert owners["workflow"] == "platform (owners rule 1)"
