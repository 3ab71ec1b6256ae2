"""User detectors: the decorator and flightlog.toml; the run-end hook."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from records import RunBuilder

from flightlog import pipeline
from flightlog.detect import RunContext, detect
from flightlog.detect.registry import detector, unregister
from flightlog.errors import ConfigurationError


def test_decorated_detector_runs_and_is_stored(store: Any) -> None:
    @detector(name="big_refund")
    def big_refund(run: RunContext) -> Any:
        for step in run.steps:
            out = run.output(step) or {}
            if step.name == "price" and out.get("amount", 0) > 1000:
                yield run.finding("big_refund", "over", "refund above 1000", step=step)

    try:
        b = RunBuilder("wf")
        b.step("price", {"amount": 5000})
        rid = b.write(store)
        found = [f for f in detect(store, rid) if f.detector == "big_refund"]
        assert [f.message for f in found] == ["refund above 1000"]
        assert [f.id for f in store.get_findings(rid) if f.detector == "big_refund"] == [
            found[0].id
        ]
    finally:
        unregister("big_refund")


def test_toml_detector_and_broken_detector(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = tmp_path / "my_checks.py"
    mod.write_text(
        textwrap.dedent("""
        def every_run(run):
            yield run.finding("every_run", "seen", f"saw {len(run.steps)} steps")

        def broken(run):
            raise RuntimeError("oops")
    """)
    )
    cfg = tmp_path / "flightlog.toml"
    cfg.write_text(
        '[detect]\ndetectors = ["my_checks:every_run", "my_checks:broken"]\ndisable = ["latency"]\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(cfg))
    b = RunBuilder("wf")
    b.step("a", {"x": 1})
    rid = b.write(store)
    found = detect(store, rid)
    assert any(f.message == "saw 1 steps" for f in found)
    broken = [f for f in found if f.detector == "detect"]
    assert broken and "RuntimeError: oops" in broken[0].message
    sys.modules.pop("my_checks", None)


def test_bad_toml_detector_is_a_configuration_error(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "flightlog.toml"
    cfg.write_text('[detect]\ndetectors = ["no_such_module_xyz:f"]\n')
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(cfg))
    rid = RunBuilder("wf").write(store)
    with pytest.raises(ConfigurationError, match="cannot load detector"):
        detect(store, rid)


def test_run_end_hook_stores_findings_and_one_attribution(store: Any) -> None:
    from flightlog.forensics.ledger import stored_attribution

    audited: list[tuple[str, dict[str, Any]]] = []
    store.add_auditor(lambda tx, kind, data: audited.append((kind, data)))
    assert [name for name, _ in pipeline.STAGES] == ["detect", "attribute"]
    b = RunBuilder("wf", status="failed")
    b.step("x", None, error=("ValueError", "bad input"))
    rid = b.write(store)
    pipeline.runs_ended(store, [rid])
    pipeline.runs_ended(store, [rid])  # delivered twice: nothing duplicated
    assert [f.detector for f in store.get_findings(rid)] == ["errors"]
    assert [k for k, _ in audited] == ["attribution"]
    assert audited[0][1]["root_cause"]["name"] == "x"
    att = stored_attribution(store, rid)
    assert att is not None and att.root_cause is not None and att.root_cause.name == "x"
