"""Records for ledger tests."""

from __future__ import annotations

import hashlib
import time

from flightlog.model import Batch, Edge, Finding, Payload, Run, Step


def payload(value: str) -> Payload:
    data = ('{"text":"' + value + '"}').encode()
    return Payload(hashlib.sha256(data).hexdigest(), data, len(data))


def run_batches(run_id: str, steps: int = 4, secret: str = "nothing") -> list[Batch]:
    """A run as the SDK writes it: start, steps (+ a data edge, a finding), end."""
    t = time.time_ns()
    p_in = payload(f"question from {secret}")
    start = Run(
        id=run_id,
        workflow="claims",
        started_ns=t,
        owner="claims-team",
        input_hash=p_in.hash,
        attributes={"user.email": f"{secret}@example.com"},
    )
    step_list = []
    pays = [p_in]
    for i in range(steps):
        out = payload(f"answer {i} for {secret}")
        pays.append(out)
        step_list.append(
            Step(
                run_id=run_id,
                id=f"{i + 1:016x}",
                name=f"step{i + 1}",
                kind="tool",
                index=i + 1,
                started_ns=t + i,
                ended_ns=t + i + 1,
                input_hash=p_in.hash,
                output_hash=out.hash,
                agent="retriever",
                cost=0.25 * i,
                input_tokens=10 * i,
                attributes={"sensitive.note": f"private {secret}", "temperature": 0.5},
            )
        )
    end = Run(
        id=run_id,
        workflow="claims",
        started_ns=t,
        status="failed",
        ended_ns=t + 99,
        reason="validator rejected the claim",
        input_hash=p_in.hash,
        attributes={"user.email": f"{secret}@example.com"},
    )
    return [
        Batch(runs=[start], payloads=pays[:1]),
        Batch(
            steps=step_list,
            payloads=pays[1:],
            edges=[Edge(run_id, step_list[0].id, step_list[1].id, "data", "content")],
            findings=[
                Finding(
                    f"f-{run_id[:8]}",
                    run_id,
                    "check",
                    "error",
                    "no docs",
                    step_id=step_list[-1].id,
                    created_ns=t + 50,
                )
            ],
        ),
        Batch(runs=[end]),
    ]


def rid(n: int) -> str:
    """Run ids whose first four hex digits differ, so short prefixes resolve."""
    return f"{n:04x}{'c0ffee' * 5}"[:32]
