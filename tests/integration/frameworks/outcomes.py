"""What Flightlog concluded about each framework run: status, failure point, root cause,
agents, tokens and data edges, read back from the store through the library's own API.
Run as a script (``python -m tests.integration.frameworks.outcomes STORE_URL``) it prints
them, one line a run."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any


@dataclass
class Outcome:
    run_id: str
    workflow: str
    status: str
    failure_point: str | None
    root_cause: str | None
    confidence: float
    agents: list[str]
    input_tokens: int
    output_tokens: int
    data_edges: list[tuple[str, str]]
    summary: str
    owner: str | None = None
    root_agent: str | None = None  # the agent of the root-cause step


def outcomes(store: Any) -> list[Outcome]:
    """Every run in ``store``, oldest first."""
    from flightlog.forensics import why

    out = []
    for run in sorted(store.list_runs(), key=lambda r: (r.started_ns, r.id)):
        rec = store.get_record(run.id)
        by_id = {s.id: s for s in rec.steps}
        att = why(store, run.id)
        out.append(
            Outcome(
                run_id=run.id,
                workflow=run.workflow,
                status=run.status,
                failure_point=att.failure_point.name if att.failure_point else None,
                root_cause=att.root_cause.name if att.root_cause else None,
                confidence=att.confidence,
                agents=sorted({s.agent for s in rec.steps if s.agent}),
                input_tokens=sum(s.input_tokens or 0 for s in rec.steps),
                output_tokens=sum(s.output_tokens or 0 for s in rec.steps),
                data_edges=[
                    (by_id[e.source].name, by_id[e.target].name)
                    for e in rec.edges
                    if e.kind == "data" and e.source in by_id and e.target in by_id
                ],
                summary=att.summary,
                owner=att.root_cause.owner if att.root_cause else None,
                root_agent=att.root_cause.agent if att.root_cause else None,
            )
        )
    return out


if __name__ == "__main__":
    from flightlog.app import open_store

    for o in outcomes(open_store(sys.argv[1])):
        print(
            f"{o.run_id[:8]} {o.workflow[:20]:20} {o.status:9} fp={o.failure_point} "
            f"rc={o.root_cause} ({o.root_agent}) conf={o.confidence:.2f} agents={o.agents} "
            f"tok={o.input_tokens}/{o.output_tokens}\n    {o.summary[:200]}"
        )
