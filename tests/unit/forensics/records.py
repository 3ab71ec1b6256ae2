"""Build runs directly as records (``store.write(Batch(...))``), for tests below the SDK."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson

from flightlog.model import Batch, Edge, ErrorInfo, Finding, Payload, Run, Step

_counter = itertools.count(1)


def payload(value: Any) -> Payload:
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return Payload(hashlib.sha256(data).hexdigest(), data, len(data))


@dataclass
class RunBuilder:
    workflow: str
    status: str = "succeeded"
    declared_steps: int | None = None
    started_ns: int = 0
    batch: Batch = field(default_factory=Batch)
    steps: list[Step] = field(default_factory=list)
    reason: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = next(_counter)
        self.id = f"{n:032x}"
        self.started_ns = self.started_ns or 1_700_000_000_000_000_000 + n * 10_000_000_000
        self.t = self.started_ns

    def step(
        self,
        name: str,
        output: Any = None,
        *,
        input: Any = None,
        kind: str = "tool",
        agent: str | None = None,
        owner: str | None = None,
        parent: Step | None = None,
        error: tuple[str, str] | None = None,
        duration_ms: float = 5,
        fed_by: tuple[Step, ...] = (),
        **attrs: Any,
    ) -> Step:
        sid = f"{len(self.steps) + 1:016x}"
        start = self.t + 1000
        end = start + int(duration_ms * 1e6)
        self.t = end
        s = Step(
            run_id=self.id,
            id=sid,
            name=name,
            kind=kind,
            index=len(self.steps) + 1,
            started_ns=start,
            ended_ns=end,
            parent_id=parent.id if parent else None,
            agent=agent,
            owner=owner,
            status="error" if error else "ok",
            attributes=attrs,
        )
        if input is not None:
            p = payload(input)
            self.batch.payloads.append(p)
            s.input_hash = p.hash
        if output is not None and not error:
            p = payload(output)
            self.batch.payloads.append(p)
            s.output_hash = p.hash
        if error:
            s.error = ErrorInfo(error[0], error[1], origin_step_id=sid)
        for src in fed_by:
            self.batch.edges.append(Edge(self.id, src.id, sid, "data", "identity"))
        self.steps.append(s)
        return s

    def check(self, step: Step, name: str, message: str) -> None:
        self.batch.findings.append(
            Finding(
                id=hashlib.sha256(f"{self.id}{step.id}{name}".encode()).hexdigest()[:32],
                run_id=self.id,
                step_id=step.id,
                detector="check",
                severity="error",
                message=message,
                evidence={"name": name},
                created_ns=step.ended_ns or 0,
            )
        )

    def write(self, store: Any) -> str:
        run = Run(
            id=self.id,
            workflow=self.workflow,
            started_ns=self.started_ns,
            status=self.status,
            ended_ns=self.t + 1000 if self.status != "running" else None,
            declared_steps=self.declared_steps,
            reason=self.reason,
            attributes=dict(self.attributes),
        )
        if self.status == "failed" and self.steps:
            last_err = [s for s in self.steps if s.status == "error"]
            if last_err:
                run.error = ErrorInfo(
                    last_err[-1].error.type,
                    last_err[-1].error.message,
                    origin_step_id=last_err[-1].id,
                )
        self.batch.runs.append(run)
        self.batch.steps.extend(self.steps)
        store.write(self.batch)
        return self.id


def claims_run(
    store: Any,
    *,
    fault: bool = False,
    n_docs: int = 4,
    declared: int | None = 7,
) -> str:
    b = RunBuilder(
        "claims-triage", status="failed" if fault else "succeeded", declared_steps=declared
    )
    claim = {"id": "C-1", "text": "water damage in kitchen", "amount": 1200}
    s1 = b.step(
        "intake_claim",
        claim,
        input={"claim": claim},
        kind="agent",
        agent="intake",
        owner="claims-team",
    )
    docs = [] if fault else [f"policy section {i}" for i in range(n_docs)]
    s2 = b.step(
        "search_policy",
        docs,
        input={"query": claim["text"]},
        kind="tool",
        agent="retriever",
        owner="search-team",
        fed_by=(s1,),
    )
    assess = {"covered": not fault, "reason": "no policy found" if fault else "section 2"}
    s3 = b.step(
        "assess_coverage",
        assess,
        input={"docs": docs},
        kind="llm",
        agent="planner",
        owner="claims-team",
        fed_by=(s2,),
        prompt_version="v12",
        model="gpt-4o",
    )
    if fault:
        s4 = b.step(
            "validate_claim",
            None,
            input={"assessment": assess},
            kind="guardrail",
            agent="validator",
            owner="claims-team",
            fed_by=(s3,),
            error=("ValidationError", "claim has no supporting policy"),
        )
        b.check(s4, "has_policy", "no supporting policy documents")
        b.reason = "validator rejected the claim"
        return b.write(store)
    s4 = b.step(
        "validate_claim",
        {"valid": True},
        input={"assessment": assess},
        kind="guardrail",
        agent="validator",
        owner="claims-team",
        fed_by=(s3,),
    )
    s5 = b.step("price_claim", {"amount": 1100.0}, input={"claim": claim}, fed_by=(s4,))
    s6 = b.step(
        "draft_response",
        {"text": "Your claim is approved."},
        kind="llm",
        agent="writer",
        fed_by=(s5,),
    )
    b.step("notify_customer", {"sent": True}, fed_by=(s6,))
    return b.write(store)
