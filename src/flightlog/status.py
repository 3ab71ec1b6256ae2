"""The status of an ingested run, derived from its whole trace.

A framework's root span says little about how a run went: the OpenAI Agents SDK leaves its
``Agent workflow`` span OK after ``Runner.run`` raised (its agent and tool spans are ERROR),
and smolagents or a LangGraph ``ToolNode`` catch a tool's exception, hand it to the model and
answer anyway. So the status of an ingested run is a pure function of its steps (the spans it
recorded) and a few facts about its root span, recomputed whenever the run's spans change:

``failed``
    An error *escaped*: the root span ended in error; or an agent step with no agent above it
    (a top-level agent turn) ended in error; or an errored step was the last word, with no
    decision step (an LLM call, an agent, a tool, a retrieval, a guardrail, a human) starting
    after it ended, outside the errored step's own ancestors.
``degraded``
    Errors happened but none escaped: the run carried on after each of them and answered.
    A step that ended OK while recording an ``exception`` event (an exception caught and
    handled inside it, per the OTel exception conventions) counts as such an error too.
``succeeded``
    The trace records no error at all.
``running``
    The root span has not arrived (or not ended) yet.

``failed_step_id`` is where the failure surfaced: the deepest error under the escaped step
(the exception's origin, not every wrapper it passed through), earliest to end first. For a
degraded run it is the first error the run recovered from, so detection, attribution and
alerting have a step to start from. A degraded or failed run is never a successful baseline:
history reads ``succeeded`` runs only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flightlog.model import FAULT_STATUSES, Run, Step

# Steps that decide something: after an error, one of these starting means the run went on.
DECISION_KINDS = frozenset({"llm", "agent", "tool", "retrieval", "guardrail", "human"})


class StepFacts(Protocol):
    """What the derivation reads of a step (``flightlog.model.Step`` has all of it)."""

    @property
    def id(self) -> str: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def started_ns(self) -> int: ...
    @property
    def ended_ns(self) -> int | None: ...
    @property
    def attributes(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class RootFacts:
    """What the run's root span says: its step id (None when the root is not a step, or
    has not arrived), whether it ended, and whether its OTel status is ERROR."""

    step_id: str | None
    ended: bool = True
    error: bool = False


@dataclass(frozen=True, slots=True)
class DerivedStatus:
    """A run's derived status, where its failure surfaced, and why."""

    status: str
    failed_step_id: str | None = None
    reason: str | None = None
    escaped: tuple[str, ...] = ()  # errored steps through which an error left the run
    swallowed: tuple[str, ...] = field(default=())  # errors the run carried on after


def handled_exception(step: StepFacts) -> bool:
    """True when a step that ended OK recorded an ``exception`` event (caught inside it)."""
    if step.status == "error":
        return False
    events = step.attributes.get("otel.events") if isinstance(step.attributes, dict) else None
    return isinstance(events, list) and any(
        isinstance(e, dict) and e.get("name") == "exception" for e in events
    )


def root_of(steps: Sequence[StepFacts]) -> str | None:
    """The root step of a trace: the earliest-starting step without a parent in the run."""
    ids = {s.id for s in steps}
    roots = [s for s in steps if s.parent_id is None or s.parent_id not in ids]
    if not roots:
        return None
    return min(roots, key=lambda s: (s.parent_id is not None, s.started_ns, s.id)).id


# (frozen: one of each is shared; a frozen dataclass costs ~5 µs to build)
_RUNNING = DerivedStatus("running")
_SUCCEEDED = DerivedStatus("succeeded")


def derive_status(steps: Sequence[StepFacts], root: RootFacts) -> DerivedStatus:
    """The status of an ingested run from its steps and root span (see the module doc)."""
    if root.step_id is None or not root.ended:
        return _RUNNING
    errored = [s for s in steps if s.status == "error"]
    handled = [s for s in steps if handled_exception(s)]
    if not errored and not handled and not root.error:
        return _SUCCEEDED  # (most runs: nothing below to build)
    by_id = {s.id: s for s in steps}
    children: dict[str, list[StepFacts]] = {}
    for s in steps:
        if s.parent_id is not None:
            children.setdefault(s.parent_id, []).append(s)

    def ancestors(s: StepFacts) -> list[str]:
        out: list[str] = []
        p = s.parent_id
        while p is not None and p in by_id and p not in out and len(out) < 10_000:
            out.append(p)
            p = by_id[p].parent_id
        return out

    escaped: list[StepFacts] = []
    root_step = by_id.get(root.step_id)
    if root_step is not None and (root.error or root_step.status == "error"):
        escaped.append(root_step)
    for s in errored:
        if s in escaped:
            continue
        if s.kind == "agent" and not any(by_id[a].kind == "agent" for a in ancestors(s)):
            escaped.append(s)  # a top-level agent turn ended in error
        elif not _carried_on(s, steps, set(ancestors(s))):
            escaped.append(s)  # nothing decided anything after this error

    if escaped:
        point = _origin(min(escaped, key=_end), children)
        return DerivedStatus(
            "failed",
            failed_step_id=point.id,
            reason=None,
            escaped=tuple(s.id for s in escaped),
            swallowed=tuple(s.id for s in errored + handled if s not in escaped),
        )
    recovered = sorted(errored + handled, key=_end)
    if not recovered:  # the root said ERROR but is not among the steps
        return DerivedStatus("failed", failed_step_id=None)
    first = _origin(recovered[0], children)
    n = len([s for s in recovered if not any(c.status == "error" for c in children.get(s.id, []))])
    return DerivedStatus(
        "degraded",
        failed_step_id=first.id,
        reason=f"{max(n, 1)} error(s) handled inside the run; it answered anyway",
        swallowed=tuple(s.id for s in recovered),
    )


def derive_run(run: Run, steps: Sequence[Step]) -> DerivedStatus:
    """``derive_status`` for a stored or decoded ingested run: the root is its earliest
    parentless step; the run has ended when its root span has (``run.ended_ns`` is set and
    the run is not ``running``). ``reason`` names the error that surfaced."""
    ended = run.ended_ns is not None and run.status != "running"
    root_id = root_of(steps) if ended else None
    derived = derive_status(steps, RootFacts(root_id, ended=ended))
    if derived.status == "failed":
        # What the run said when it failed (its root span's error), else the failure point's.
        by_id = {s.id: s for s in steps}
        for sid in (root_id, derived.failed_step_id):
            s = by_id.get(sid or "")
            if s is not None and s.status == "error" and s.error is not None:
                return dataclasses.replace(derived, reason=s.error.message or s.error.type)
    return derived


# What an ingested run's outcome is made of: re-derived, never a fact (``store.facts``).
OUTCOME_FIELDS = ("status", "failed_step_id", "reason", "error")


def apply_derived_status(run: Run, steps: Sequence[Step]) -> None:
    """Set an ingested run's status, failure point, reason and error from its whole trace:
    called when its root span arrives and again whenever more of its spans do (the store
    does it inside the write transaction, under the run's row lock, from every stored
    step: ``Store.write(reorder=...)``). A run whose root span has not ended is left as
    it is."""
    if run.ended_ns is None:
        return
    if run.status == "running":
        run.status = "unknown"  # ended: derive_run decides
    derived = derive_run(run, steps)
    run.status = derived.status
    run.failed_step_id = derived.failed_step_id
    run.reason = derived.reason
    if derived.status != "failed":
        run.error = None
        return
    by_id = {s.id: s for s in steps}
    root, point = by_id.get(root_of(steps) or ""), by_id.get(derived.failed_step_id or "")
    source = root if root is not None and root.status == "error" else point
    run.error = source.error if source is not None else None


class _Ended(Protocol):
    """What ``failure_point`` reads of a step (a ``StepOutline`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def started_ns(self) -> int: ...
    @property
    def ended_ns(self) -> int | None: ...


def failure_point(steps: Sequence[_Ended]) -> str | None:
    """The earliest-ending errored step (the deepest when several end together): where a
    trace the server closed without its root span failed (``server.ingest.close_trace``)."""
    errs = [s for s in steps if s.status == "error"]
    if not errs:
        return None
    return min(errs, key=lambda s: (s.ended_ns or s.started_ns, -s.started_ns)).id


def apply_closed_status(run: Run, steps: Sequence[StepFacts]) -> None:
    """The outcome of a run the server closed because its root span never came
    (``store.facts.CLOSED_IDLE``), from all its spans, as more of them arrive without the
    root: ``failed`` at ``failure_point`` when a span ended in error, else ``unknown`` (no
    root span, no outcome). Its reason (closed without its root span) and error are kept;
    the root span, if it comes, replaces the run's record (``apply_derived_status`` then)."""
    point = failure_point(steps)
    run.status = "failed" if point is not None else "unknown"
    run.failed_step_id = point


def _end(s: StepFacts) -> tuple[int, int]:
    return (s.ended_ns if s.ended_ns is not None else s.started_ns, -s.started_ns)


# Some SDKs record start times to the millisecond and end times finer (OpenTelemetry JS):
# a step that starts within this much before an error ended may still have started after it.
CLOCK_SLACK_NS = 1_000_000


def _carried_on(err: StepFacts, steps: Sequence[StepFacts], above: set[str]) -> bool:
    """Whether a decision step ran OK after ``err`` ended, outside ``err``'s ancestors."""
    end = err.ended_ns if err.ended_ns is not None else err.started_ns
    return any(
        s.kind in DECISION_KINDS
        and s.status != "error"
        and s.id not in above
        and s.id != err.id
        and s.started_ns >= end - CLOCK_SLACK_NS
        and s.started_ns >= err.started_ns
        and (s.ended_ns if s.ended_ns is not None else s.started_ns) > end
        for s in steps
    )


def _origin(step: StepFacts, children: dict[str, list[StepFacts]]) -> StepFacts:
    """The deepest errored descendant of ``step`` reached through errored children (earliest
    to end at each level): where the exception was raised rather than where it passed."""
    seen = {step.id}
    current = step
    while True:
        errs = [
            c
            for c in children.get(current.id, [])
            if (c.status == "error" or handled_exception(c)) and c.id not in seen
        ]
        if not errs:
            return current
        current = min(errs, key=_end)
        seen.add(current.id)


__all__ = [
    "DECISION_KINDS",
    "OUTCOME_FIELDS",
    "FAULT_STATUSES",
    "DerivedStatus",
    "RootFacts",
    "apply_closed_status",
    "apply_derived_status",
    "derive_run",
    "derive_status",
    "failure_point",
    "handled_exception",
    "root_of",
]
