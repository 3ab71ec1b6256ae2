"""A drill of 50+ faults of every generic kind on the claims demo workflow: at least 95%
detected, attributed to the injected step and paged to its owner; every miss reported."""

from __future__ import annotations

from pathlib import Path

from flightlog.drills.runner import run_drill, text
from flightlog.drills.spec import parse_drill

from .test_drill_cli import _toml

FAULTS = [
    ("intake_claim", "missing_field", {}),
    ("intake_claim", "corrupt_field", {"field": "policy"}),
    ("search_policy", "empty", {}),
    ("search_policy", "latency", {"seconds": 0.01, "timeout": 0.005}),
    ("search_policy", "rate_limit", {"retry_after": 3}),
    ("search_policy", "truncate", {"keep": 0.0}),
    ("assess_coverage", "malformed_json", {}),
    ("validate_claim", "exception", {}),
    ("price_claim", "exception", {"error": "ZeroDivisionError"}),
    ("notify_customer", "exception", {}),
]


def test_fifty_faults(tmp_path: Path) -> None:
    from flightlog import demo

    claims = demo.make_claims(12)[:12]
    src = [
        "[drill]",
        'name = "fifty faults"',
        'entry = "flightlog.demo:triage"',
        "runs = 80",
        "history = 10",
        "seed = 11",
        'within = "300s"',
        "inputs = [" + ", ".join(_toml(c) for c in claims) + "]",
    ]
    for step, kind, params in FAULTS:
        src += ["", "[[fault]]", f'step = "{step}"', f'kind = "{kind}"', "probability = 0.09"]
        if params:
            src.append(f"params = {_toml(params)}")
    report = run_drill(parse_drill("\n".join(src)), workdir=tmp_path)
    summary = text(report)
    assert len(report.checks) >= 50, summary
    ok = sum(1 for c in report.checks if c.detected and c.root_ok)
    assert ok / len(report.checks) >= 0.95, summary
    assert (report.paged_rate or 0) >= 0.95, summary
    # every miss is reported, with its run and what was injected
    for c in report.checks:
        if not c.ok:
            assert c.run_id[:12] in summary and c.misses
    assert {k for _, k, _ in FAULTS} <= {i["kind"] for c in report.checks for i in c.injected}
    assert not report.control_failures, summary
