"""Real agent frameworks, traced by their real instrumentations, against a scripted
OpenAI-compatible endpoint on loopback, exporting with the real OTLP exporter to a real
``flightlog serve``. Every framework runs three successful runs, then each fault: a tool
returning ``[]``, error JSON or truncated JSON that breaks the next tool, a tool that raises
out of the framework, and a tool error the framework catches before answering anyway.

For each run: the status (a fault is never a clean success), where it failed, the root cause
(the faulty tool, whatever wrapped it), the agents, the tokens (counted once: equal to what
the endpoint reported) and the lineage; for each framework: no span lost and an audit trail
that verifies.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flightlog.app import open_store
from tests.integration.frameworks.conftest import run_app
from tests.integration.frameworks.expectations import FAULTS, FRAMEWORKS, LIVE, Framework
from tests.integration.frameworks.outcomes import outcomes

SCENARIOS = ("ok_1", "ok_2", "ok_3", *FAULTS)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", LIVE)
def test_framework_runs_are_judged_right(name: str, llm: str, tmp_path: Path) -> None:
    fw: Framework = FRAMEWORKS[name]
    app = run_app(name, list(fw.command), llm, tmp_path)
    store = open_store(app.server.store_url)
    got = outcomes(store)
    assert len(got) == len(SCENARIOS), f"one run per scenario:\n{app.output}"

    problems = []
    for scenario, o in zip(SCENARIOS, got, strict=True):
        want = (fw.status(scenario), fw.failure_point(scenario))
        want_root = fw.root_cause(scenario)
        if (o.status, o.failure_point) != want or o.root_cause != want_root:
            problems.append(
                f"{scenario}: got {o.status} at {o.failure_point}, root cause {o.root_cause}; "
                f"want {want[0]} at {want[1]}, root cause {want_root} ({o.summary})"
            )
        if not fw.agents <= set(o.agents):
            problems.append(f"{scenario}: agents {o.agents}, want {sorted(fw.agents)}")
        if fw.root_agent and want_root and o.root_agent != fw.root_agent:
            problems.append(f"{scenario}: root cause's agent {o.root_agent}, want {fw.root_agent}")
        if o.input_tokens <= 0 or o.output_tokens <= 0:
            problems.append(f"{scenario}: no tokens recorded")
    assert not problems, "\n".join(problems)

    ok = got[0]
    if fw.lineage:  # the truncated policy is plain text: content matching must find it
        truncated = got[SCENARIOS.index("truncated")]
        assert any(a == fw.tool("lookup_policy") for a, _ in truncated.data_edges), (
            f"the truncated policy should flow on from lookup_policy: {truncated.data_edges}"
        )
    # Tokens counted once: the LLM steps' usage adds up to what the endpoint reported.
    assert sum(o.input_tokens + o.output_tokens for o in got) == app.llm_tokens
    # Nothing lost: every span the app exported is a stored step.
    assert sum(len(store.get_steps(o.run_id)) for o in got) == app.spans_exported
    if fw.handoff:
        rec = store.get_record(ok.run_id)
        names = {s.id: s.name for s in rec.steps}
        handoffs = [(names[e.source], names[e.target]) for e in rec.edges if e.kind == "handoff"]
        assert handoffs, "the hand-off between agents is an edge"
    verify = subprocess.run(
        [sys.executable, "-m", "flightlog", "audit", "verify", "--db", app.server.store_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
