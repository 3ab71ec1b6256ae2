"""Attribution: the failure point of a run, its root-cause step, the chain between them.

Method (DESIGN.md, "Attribution, in brief"): find where the failure surfaced (the step where
the fatal exception originated, else the step active when ``run.fail`` was called, else the
first failed check or error), walk back from it along data, handoff and parent edges, score
every upstream step by its evidence (errors, findings, anomalies against the same step in the
workflow's successful runs), and name the *earliest* step whose fault explains the failure.
Weak evidence gives a low confidence and the word "hypothesis". Across runs, spectrum-based
fault localisation (``flightlog.forensics.spectrum``) adds supporting evidence. Where the
failure surfaced, and "step k of N", are ``flightlog.forensics.failure``.

Over 500 lines on purpose: ``attribute`` is one algorithm (candidates, evidence, the chain,
confidence, alternatives) whose steps read in order; the records it answers with and its
scoring helpers sit beside it so a change to the method is made in one file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightlog import model
from flightlog.detect import RunContext, history_cache, run_detectors
from flightlog.errors import InputError
from flightlog.forensics.failure import failed_sentence, failure_point, failure_position, of_steps
from flightlog.forensics.lineage import Lineage
from flightlog.model import FAULT_STATUSES, Finding, Step, finding_kind, severity_rank

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

STRONG = 0.6  # a step's evidence at or above this is a fault that can explain a failure
MEDIUM = 0.35
MIN_HISTORY = 3  # successful runs needed before anomalies mean anything
# A check made between steps names no step: it counts against the step that ended last
# before it at this share of a check made inside that step (0.9 -> 0.77, still strong).
RUN_CHECK = 0.85


@dataclass(slots=True, frozen=True)
class StepRef:
    """A step, as named in an attribution."""

    id: str
    index: int
    name: str
    agent: str | None = None
    kind: str | None = None
    owner: str | None = None

    @classmethod
    def of(cls, step: Step) -> StepRef:
        return cls(step.id, step.index, step.name, step.agent, step.kind, step.owner)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def label(self) -> str:
        who = []
        if self.agent:
            who.append(f"agent {self.agent}")
        if self.owner:
            who.append(f"owner {self.owner}")
        return f"step {self.index} {self.name}" + (f" ({', '.join(who)})" if who else "")


@dataclass(slots=True)
class Attribution:
    """Why a run failed: failure point, root cause, chain, evidence, confidence, alternatives."""

    run_id: str
    failed: bool
    failure_point: StepRef | None = None
    root_cause: StepRef | None = None
    of_steps: int = 0
    chain: list[StepRef] = field(default_factory=list)
    confidence: float = 0.0
    evidence: list[str] = field(default_factory=list)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    method: str = "none"
    summary: str = ""
    workflow: str | None = None
    status: str | None = None
    hypothesis: bool = False
    cause: str | None = None  # the root cause's main evidence, in one phrase

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "failed": self.failed,
            "failure_point": self.failure_point.to_dict() if self.failure_point else None,
            "root_cause": self.root_cause.to_dict() if self.root_cause else None,
            "of_steps": self.of_steps,
            "chain": [s.to_dict() for s in self.chain],
            "confidence": round(self.confidence, 3),
            "hypothesis": self.hypothesis,
            "cause": self.cause,
            "evidence": list(self.evidence),
            "alternatives": list(self.alternatives),
            "method": self.method,
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attribution:
        def ref(d: dict[str, Any] | None) -> StepRef | None:
            return StepRef(**d) if d else None

        return cls(
            run_id=data["run_id"],
            failed=bool(data.get("failed")),
            failure_point=ref(data.get("failure_point")),
            root_cause=ref(data.get("root_cause")),
            of_steps=int(data.get("of_steps") or 0),
            chain=[StepRef(**d) for d in data.get("chain") or []],
            confidence=float(data.get("confidence") or 0.0),
            evidence=list(data.get("evidence") or []),
            alternatives=list(data.get("alternatives") or []),
            method=data.get("method", ""),
            summary=data.get("summary", ""),
            workflow=data.get("workflow"),
            status=data.get("status"),
            hypothesis=bool(data.get("hypothesis")),
            cause=data.get("cause"),
        )


# How much a kind of evidence says "this step is at fault" (0-1).
KIND_WEIGHT: dict[str, float] = {
    "exception": 1.0,
    "timeout": 1.0,
    "check": 0.9,
    "http_error": 0.9,
    "error_field": 0.9,
    "error_text": 0.75,
    "empty": 0.85,
    "type": 0.85,
    "fields": 0.8,
    "truncated": 0.85,
    "refusal": 0.85,
    "prompt_injection": 0.85,
    "loop": 0.8,
    "stale": 0.75,
    "ungrounded": 0.75,
    "number": 0.7,
    "category": 0.65,
    "attr": 0.7,
    "short": 0.65,
    "budget": 0.6,
    "overrun": 0.3,
    "outlier": 0.25,
    "unfinished": 0.2,
    "broken": 0.0,
    "run_exception": 0.0,
}
SEVERITY_WEIGHT = {"critical": 0.9, "error": 0.75, "warning": 0.5, "info": 0.1}


def finding_weight(f: Finding) -> float:
    if f.detector == "check":
        return KIND_WEIGHT["check"] * (1.0 if severity_rank(f.severity) >= 2 else 0.6)
    kind = model.finding_kind(f)
    if kind in KIND_WEIGHT:
        return KIND_WEIGHT[kind]
    return SEVERITY_WEIGHT.get(f.severity, 0.3)


@dataclass(slots=True)
class _Candidate:
    step: Step
    score: float = 0.0
    evidence: list[tuple[float, str]] = field(default_factory=list)
    messages: list[tuple[float, str]] = field(default_factory=list)
    on_chain: bool = True
    hops: int = 0
    kinds: list[tuple[float, str]] = field(default_factory=list)
    severe: bool = False  # an error-severity finding is among the evidence

    def add(
        self, weight: float, sentence: str, message: str, kind: str = "", severe: bool = False
    ) -> None:
        self.severe = self.severe or severe
        self.kinds.append((weight, kind))
        self.evidence.append((weight, sentence))
        self.messages.append((weight, message))
        # Noisy-or: independent pieces of evidence reinforce each other.
        self.score = 1 - (1 - self.score) * (1 - weight)

    def best(self) -> str:
        return max(self.messages, key=lambda e: e[0])[1] if self.messages else ""


def why(store: StoreReader, run_id: str, *, history: bool = True) -> Attribution:
    """Attribute a run's failure. Raises ``NotFoundError`` for an unknown id; every other
    problem (run in progress, no steps, no history, cyclic lineage) gives an answer that says
    so, with a low confidence."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise InputError("why() needs a run id (32 hex digits, or a unique prefix of one)")
    run_id = store.resolve_run_id(run_id.strip())
    record = store.get_record(run_id)
    hist = history_cache.get(store, record.run.workflow) if history else None
    ctx = RunContext(store, record, hist)
    return attribute(ctx)


def attribute(ctx: RunContext, findings: list[Finding] | None = None) -> Attribution:
    """Attribute the failure of the run in ``ctx`` (see the module docstring).

    ``findings``: the run's findings with the detectors already applied (the run-end
    pipeline detects once and hands them on); without it the detectors run here."""
    run = ctx.run
    att = Attribution(
        run_id=run.id,
        failed=run.status in FAULT_STATUSES,
        workflow=run.workflow,
        status=run.status,
        of_steps=of_steps(ctx),
    )
    if run.status == "running":
        att.method = "none"
        att.summary = (
            f"run {run.id[:12]} of {run.workflow} is still running; "
            "attribution is available once it ends"
        )
        att.evidence.append("the run has not ended yet")
        return att
    if run.status not in FAULT_STATUSES:
        att.method = "none"
        att.summary = f"run {run.id[:12]} of {run.workflow} {run.status}; nothing to attribute"
        return att
    from flightlog.forensics.transcripts import is_conversation

    if is_conversation(run):
        # A conversation has no typed outputs, checks or step history: its own rules apply.
        from flightlog.forensics.conversation import attribute_run

        conv: Attribution = attribute_run(ctx)
        return conv
    if not ctx.steps:
        att.method = "none"
        att.hypothesis = True
        att.evidence.append(failed_sentence(ctx))
        att.evidence.append("the run recorded no steps, so no step can be blamed")
        att.summary = f"failed before recording any step; {failed_sentence(ctx)}"
        return att

    if findings is None:
        fresh = run_detectors(ctx)
        known = {f.id for f in ctx.record.findings}
        findings = ctx.record.findings + [f for f in fresh if f.id not in known]

    fp, fp_reason = failure_point(ctx, findings)
    assert fp is not None
    att.failure_point = StepRef.of(fp)
    lineage = Lineage.build(ctx.steps, ctx.record.edges)
    walk = lineage.walk_back(fp.id)

    cands: dict[str, _Candidate] = {}
    for s in ctx.steps:
        if s.id in walk:
            cands[s.id] = _Candidate(s, on_chain=True, hops=walk[s.id][2])
        elif s.index < fp.index:
            cands[s.id] = _Candidate(s, on_chain=False, hops=fp.index - s.index)
    for f in findings:
        sid, label = f.step_id, "check failed" if f.detector == "check" else f.detector
        if sid is None and f.detector == "check":
            # A check made between steps (flightlog.check outside any step) judges what
            # the run has produced so far: the nearest suspect is the step that ended last
            # before it. Evidence, a little weaker than a check made inside the step.
            before = _ended_last_before(ctx.steps, f.created_ns)
            if before is not None:
                sid, label = before.id, "check failed right after this step, outside any step"
        if sid in cands:
            w = finding_weight(f) * (RUN_CHECK if sid != f.step_id else 1.0)
            if w > 0:
                cands[sid].add(
                    w,
                    f"{label}: {f.message}",
                    f.message,
                    finding_kind(f),
                    severe=severity_rank(f.severity) >= 2,
                )

    history_runs = len([r for r in ctx.history.run_ids if r != run.id])
    att.evidence.append(
        f"{failed_sentence(ctx)}; it surfaced at step {fp.index} of "
        f"{att.of_steps} ({fp.name}): {fp_reason}"
    )
    if history_runs < MIN_HISTORY:
        att.evidence.append(
            f"only {history_runs} successful run(s) of {run.workflow} to compare against: "
            "anomaly evidence is unavailable"
        )
    att.evidence.extend(lineage.problems)

    fp_c = cands[fp.id]
    # A step the failure point runs inside (an agent, a graph node, a workflow span) ends
    # after it: its error and output carry the failure's consequences, not a cause.
    for c in list(cands.values()):
        if c is not fp_c and _is_descendant(lineage, fp, c.step):
            del cands[c.step.id]
    upstream = [
        c
        for c in cands.values()
        if c.step.id != fp.id and c.step.index <= fp.index or (c.step.id != fp.id and c.on_chain)
    ]
    has_lineage = lineage.data_edges > 0
    on = sorted((c for c in upstream if c.on_chain or not has_lineage), key=lambda c: c.step.index)
    off = sorted(
        (c for c in upstream if not (c.on_chain or not has_lineage)), key=lambda c: c.step.index
    )

    root: _Candidate | None = None
    confidence = 0.0
    method = "lineage walk-back"
    # Walking back, an error-severity finding outranks an earlier step's warnings (a version
    # never seen before is worth a look; an empty result that broke the next step is a fault).
    strong_on = _severe_first([c for c in on if c.score >= STRONG])
    strong_off = _severe_first([c for c in off if c.score >= STRONG])
    # A parent whose output merely carries a faulty child's output is not the root: the
    # child is (its fault is inherited by the parent's output).
    # The child counts as on the chain when only its parent's output was linked onward (a
    # framework's step span repeating its tool's result).
    carried: list[_Candidate] = []
    for c in strong_on:
        kids = [
            d
            for d in strong_on + strong_off
            if d is not c and _is_descendant(lineage, d.step, c.step)
        ]
        if not kids:
            carried.append(c)
        elif all(d in strong_off for d in kids):
            carried.append(min(kids, key=lambda d: d.step.index))
    unique = {id(c): c for c in carried}
    strong_on = sorted(unique.values(), key=lambda c: c.step.index)
    # Off the chain likewise: a parent whose fault is its child's yields to the child.
    strong_off = [
        c
        for c in strong_off
        if not any(d is not c and _is_descendant(lineage, d.step, c.step) for d in strong_off)
    ]
    # In a loop, start order is not causal order: every member repeats because of the one
    # whose own output is wrong. Prefer the member with evidence besides the repetition.
    if strong_on and _only_loop(strong_on[0]):
        members = [c for c in strong_on if any(k == "loop" for _, k in c.kinds)]
        deciding = [c for c in members if _non_loop_score(c) >= MEDIUM]
        if deciding:
            best = max(deciding, key=lambda c: (_non_loop_score(c), -c.step.index))
            strong_on.remove(best)
            strong_on.insert(0, best)
    inherited = _empty_inputs(ctx, strong_on[0].step) if strong_on else []
    earlier_off = [c for c in strong_off if strong_on and c.step.index < strong_on[0].step.index]
    if inherited and earlier_off:
        # The on-chain step was handed an empty input: the fault is further upstream, where
        # lineage cannot follow (an empty value carries no content to trace).
        for sentence in inherited:
            att.evidence.append(
                f"step {strong_on[0].step.index} {strong_on[0].step.name} {sentence}"
            )
        root = earlier_off[0]
        confidence = 0.45 + 0.3 * root.score
        method = "lineage walk-back, then temporal (the chain's input was empty)"
    elif strong_on:
        root = strong_on[0]
        confidence = _as_root(root, has_lineage)
        if not has_lineage:
            method = "temporal walk-back (no data lineage recorded)"
    elif strong_off:
        root = strong_off[0]
        confidence = _as_root(root, has_lineage)
        method = "temporal walk-back (fault not connected by recorded lineage)"
    else:
        medium = [c for c in on if c.score >= MEDIUM]
        if medium and fp_c.score < STRONG * 1.5 and not _raised_here(fp):
            root = max(medium, key=lambda c: (c.score, -c.step.index))
            confidence = 0.25 + 0.3 * root.score
        elif fp_c.score > 0 or fp.status == "error":
            root = fp_c
            confidence = 0.8 if _raised_here(fp) else 0.45 + 0.2 * fp_c.score
            if not _raised_here(fp) and not fp_c.evidence:
                confidence = 0.3
            method = "failure point (no upstream evidence)"
        else:
            root = fp_c
            confidence = 0.2
            method = "failure point (no evidence anywhere)"

    def scaled(conf: float, c: _Candidate) -> float:
        """The run-wide discounts, applied alike to the root cause and the alternatives."""
        if history_runs < MIN_HISTORY and c is not fp_c:
            conf *= 0.85
        if history_runs < MIN_HISTORY and c is fp_c and not _raised_here(fp):
            conf = min(conf, 0.4)
        if lineage.problems:
            conf *= 0.9
        if not _captured(ctx, c.step):
            conf *= 0.85
        return conf

    confidence = scaled(confidence, root)
    blind = [s for s in (root.step, fp) if not _captured(ctx, s)]
    if len(blind) == 2 and blind[0].id == blind[1].id:
        blind = blind[:1]
    for s in blind:
        att.evidence.append(
            f"step {s.index} {s.name}: its inputs and outputs were not captured, so content "
            "evidence (empty, changed shape, error text) could not be checked"
        )

    # Cross-run evidence (spectrum-based fault localisation) when the workflow has failures.
    try:
        from flightlog.forensics.spectrum import localize

        spectrum = localize(ctx.store, run.workflow, ctx)
    except Exception as exc:  # supporting evidence only: never fail the attribution
        spectrum = None
        att.evidence.append(f"cross-run analysis unavailable: {exc}")
    if spectrum is not None and spectrum.top is not None:
        top = spectrum.top
        att.evidence.append(spectrum.sentence())
        if top.step_id and root is not None and top.step_id == root.step.id:
            confidence = min(0.99, confidence + 0.05)
            method += " + spectrum (Ochiai)"

    att.root_cause = StepRef.of(root.step)
    att.confidence = max(0.0, min(0.99, confidence))
    att.hypothesis = att.confidence < 0.5
    att.method = method + (" [hypothesis]" if att.hypothesis else "")
    path = lineage.path(walk, root.step.id) if root.step.id in walk else [root.step.id, fp.id]
    if path[-1] != fp.id:
        path.append(fp.id)
    att.chain = [StepRef.of(lineage.steps[i]) for i in dict.fromkeys(path)]
    att.cause = root.best() or (fp_reason if root is fp_c else None)
    for _, sentence in sorted(root.evidence, key=lambda e: -e[0]):
        att.evidence.append(f"step {root.step.index} {root.step.name}: {sentence}")
    if root is not fp_c:
        for _, sentence in sorted(fp_c.evidence, key=lambda e: -e[0])[:3]:
            att.evidence.append(f"step {fp.index} {fp.name} (failure point): {sentence}")
        if len(att.chain) > 2:
            att.evidence.append(
                "causal chain: " + " -> ".join(f"{s.index} {s.name}" for s in att.chain)
            )

    # Alternatives on the root cause's scale: the confidence each would have had if chosen.
    alts = sorted(
        (
            (round(max(0.0, min(0.99, scaled(_as_root(c, has_lineage), c))), 3), c)
            for c in cands.values()
            if c is not root and c.score > 0
        ),
        key=lambda pair: (-pair[0], pair[1].step.index),
    )
    att.alternatives = [
        {
            "step": StepRef.of(c.step).to_dict(),
            "confidence": conf,
            "score": round(c.score, 3),
            "on_chain": c.on_chain,
            "reason": max(c.evidence)[1] if c.evidence else "",
        }
        for conf, c in alts[:5]
    ]
    _name_owners(att, ctx)
    att.summary = _summary(att)
    if blind:
        att.summary += " (inputs/outputs not captured: content evidence unavailable)"
    return att


def _name_owners(att: Attribution, ctx: RunContext) -> None:
    """Give the named steps their owners by the resolution alerts use (code owner, else the
    ``[[owners]]`` rules): ingested runs record no owners of their own."""
    if all(s.owner for s in ctx.steps):
        return
    from flightlog.owners import step_owners

    owners = step_owners(ctx.run.workflow, ctx.steps)

    def named(ref: StepRef | None) -> StepRef | None:
        if ref is None or ref.owner or ref.id not in owners:
            return ref
        return dataclasses.replace(ref, owner=owners[ref.id])

    att.failure_point = named(att.failure_point)
    att.root_cause = named(att.root_cause)
    att.chain = [r for r in (named(r) for r in att.chain) if r is not None]
    for alt in att.alternatives:
        step = alt.get("step")
        if isinstance(step, dict) and not step.get("owner") and step.get("id") in owners:
            step["owner"] = owners[step["id"]]


def _as_root(c: _Candidate, has_lineage: bool) -> float:
    """The confidence of naming ``c`` the root cause, before run-wide discounts: strong
    evidence on the recorded chain 0.55 + 0.4·score (0.15 less without data lineage), strong
    evidence off it 0.35 + 0.3·score, weaker evidence 0.25 + 0.3·score."""
    if c.score >= STRONG and (c.on_chain or not has_lineage):
        return 0.55 + 0.4 * c.score - (0 if has_lineage else 0.15)
    if c.score >= STRONG:
        return 0.35 + 0.3 * c.score
    return 0.25 + 0.3 * c.score


def _captured(ctx: RunContext, step: Step) -> bool:
    """Whether the step's input or output is known (content evidence is possible): recorded,
    or for a tool step, read from the messages the model was handed."""
    return ctx.input(step) is not None or ctx.output(step) is not None


# Evidence that a step ran differently, not that its result was wrong: a version or model
# never seen in successful runs, a latency or budget outlier, a step left open.
CIRCUMSTANTIAL = frozenset({"attr", "outlier", "overrun", "unfinished", "budget"})


def _severe_first(cands: list[_Candidate]) -> list[_Candidate]:
    """``cands`` (in walk order) without those whose only evidence is circumstantial
    warnings, when some candidate has error-severity evidence: on the walk back an error
    outranks an earlier warning that only says the step ran differently."""
    if not any(c.severe for c in cands):
        return cands
    return [
        c for c in cands if c.severe or any(k not in CIRCUMSTANTIAL for w, k in c.kinds if w > 0)
    ]


def _only_loop(c: _Candidate) -> bool:
    strong = [k for w, k in c.kinds if w >= MEDIUM]
    return bool(strong) and all(k == "loop" for k in strong)


def _non_loop_score(c: _Candidate) -> float:
    score = 0.0
    for w, k in c.kinds:
        if k != "loop":
            score = 1 - (1 - score) * (1 - w)
    return score


def _ended_last_before(steps: list[Step], at_ns: int) -> Step | None:
    """The step that ended last at or before ``at_ns`` (the innermost of a tie), if any."""
    ended = [s for s in steps if s.ended_ns is not None and at_ns and s.ended_ns <= at_ns]
    return max(ended, key=lambda s: (s.ended_ns or 0, s.index)) if ended else None


def _is_descendant(lineage: Lineage, step: Step, ancestor: Step) -> bool:
    seen: set[str] = set()
    parent = step.parent_id
    while parent and parent not in seen:
        if parent == ancestor.id:
            return True
        seen.add(parent)
        p = lineage.steps.get(parent)
        parent = p.parent_id if p else None
    return False


def _empty_inputs(ctx: RunContext, step: Step) -> list[str]:
    """Sentences for the step's arguments that are empty where they usually are not."""
    from flightlog.detect import features as fx

    value = ctx.input(step)
    base = [s.input for s in ctx.baseline(step) if isinstance(s.input, dict)]
    if not isinstance(value, dict) or len(base) < MIN_HISTORY:
        return []
    out = []
    for name, v in value.items():
        if not fx.is_empty(v):
            continue
        hist = [b.get(name) for b in base if name in b]
        if len(hist) >= MIN_HISTORY and sum(not fx.is_empty(h) for h in hist) / len(hist) >= 0.9:
            out.append(f"received an empty {name!r} where it usually receives a value")
    return out


def _raised_here(step: Step) -> bool:
    return step.status == "error" and (
        step.error is None or step.error.origin_step_id in (None, step.id)
    )


def _summary(att: Attribution) -> str:
    fp, rc = att.failure_point, att.root_cause
    if fp is None or rc is None:
        return att.summary
    verb = "degraded" if att.status == "degraded" else "failed"
    head = f"{verb} at step {fp.index} of {att.of_steps} ({fp.name}); "
    who = [
        x
        for x in (f"agent {rc.agent}" if rc.agent else "", f"owner {rc.owner}" if rc.owner else "")
        if x
    ]
    cause = att.cause or "no direct evidence"
    hyp = "hypothesis: " if att.hypothesis else ""
    return (
        f"{head}{hyp}root cause step {rc.index} {rc.name}"
        + (f" ({', '.join(who)})" if who else "")
        + f": {cause}"
    )


__all__ = [
    "Attribution",
    "StepRef",
    "attribute",
    "failure_point",
    "failure_position",
    "finding_weight",
    "of_steps",
    "why",
]
