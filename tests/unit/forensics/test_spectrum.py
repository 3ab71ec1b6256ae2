"""Spectrum-based fault localisation across runs (Ochiai, DStar)."""

from __future__ import annotations

from typing import Any

from records import RunBuilder

from flightlog.forensics import why
from flightlog.forensics.spectrum import localize


def _run(store: Any, version: str, fail: bool) -> str:
    b = RunBuilder("plans", status="failed" if fail else "succeeded")
    s1 = b.step("fetch", {"rows": [1, 2, 3]}, agent="loader")
    s2 = b.step(
        "plan",
        {"steps": ["a", "b"]},
        kind="llm",
        agent="planner",
        fed_by=(s1,),
        prompt_version=version,
    )
    if fail:
        s3 = b.step("execute", None, fed_by=(s2,), error=("RuntimeError", "plan not executable"))
        b.check(s3, "executable", "plan not executable")
    else:
        b.step("execute", {"ok": True}, fed_by=(s2,))
    return b.write(store)


def test_failures_began_with_a_prompt_version(store: Any) -> None:
    for _ in range(8):
        _run(store, "v12", fail=False)
    first = _run(store, "v13", fail=True)
    _run(store, "v13", fail=True)
    last = _run(store, "v13", fail=True)
    spec = localize(store, "plans")
    assert spec is not None and spec.top is not None
    assert spec.top.key == "attr:plan:prompt_version=v13"
    assert (spec.top.ef, spec.top.ep, spec.failed, spec.passed) == (3, 0, 3, 8)
    assert spec.top.ochiai == 1.0 and spec.top.first_failed_run == first
    att = why(store, last)
    assert att.root_cause is not None and att.root_cause.name == "plan"
    assert "spectrum (Ochiai)" in att.method
    sentence = next(e for e in att.evidence if "failures coincide with" in e)
    assert "planner prompt_version v13" in sentence
    assert f"failures began with planner prompt_version v13 in run {first[:12]}" in sentence


def test_no_spectrum_without_failures_and_passes(store: Any) -> None:
    _run(store, "v12", fail=False)
    _run(store, "v13", fail=True)
    assert localize(store, "plans") is None
