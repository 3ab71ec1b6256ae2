"""The records Flightlog keeps, and how they map onto OpenTelemetry.

=============  =====================  ==================================================
Flightlog      OpenTelemetry          notes
=============  =====================  ==================================================
``Run``        trace (32 hex id)      one execution of a workflow
``Step``       span (16 hex id)       one decision: an LLM call, a tool call, an agent step
``Edge``       parent / span link     lineage between two steps of one run
``Payload``    attribute value        canonical JSON, content-addressed by SHA-256
``Finding``    evaluation event       what a detector (or ``check``) saw
=============  =====================  ==================================================

Records are plain dataclasses. ``to_dict`` gives the JSON form used by the CLI, the REST API
and the audit ledger; ``from_dict`` reverses it. Timestamps are integer nanoseconds since the
Unix epoch, as in OTLP.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

RunStatus = Literal["running", "succeeded", "degraded", "failed", "unknown"]
StepStatus = Literal["running", "ok", "error"]
Severity = Literal["info", "warning", "error", "critical"]

STEP_KINDS: tuple[str, ...] = (
    "agent",
    "llm",
    "tool",
    "retrieval",
    "guardrail",
    "chain",
    "human",
    "function",
)
DEFAULT_PROJECT = "default"
RUN_STATUSES: tuple[str, ...] = ("running", "succeeded", "degraded", "failed", "unknown")
# Runs that went wrong: ``failed`` (an error escaped) and ``degraded`` (errors were handled
# inside the run and it answered anyway; see flightlog.status). Both are detected,
# attributed and alerted on; neither is ever a successful baseline (history is "succeeded").
FAULT_STATUSES: tuple[str, ...] = ("failed", "degraded")
SEVERITIES: tuple[str, ...] = ("info", "warning", "error", "critical")
EDGE_KINDS: tuple[str, ...] = ("parent", "data", "handoff")
EDGE_EVIDENCE: tuple[str, ...] = ("identity", "content", "substring", "declared", "link", "parent")


def severity_rank(severity: str) -> int:
    """Order severities: info < warning < error < critical (unknown ranks as info)."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return 0


@dataclass(slots=True)
class ErrorInfo:
    """An exception as recorded: its type, message and formatted traceback."""

    type: str
    message: str
    traceback: str | None = None
    origin_step_id: str | None = None  # the step in which the exception was first raised

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ErrorInfo | None:
        if not data:
            return None
        return cls(
            type=str(data.get("type", "")),
            message=str(data.get("message", "")),
            traceback=data.get("traceback"),
            origin_step_id=data.get("origin_step_id"),
        )


@dataclass(slots=True)
class Run:
    """One execution of a workflow (an OpenTelemetry trace)."""

    id: str
    workflow: str
    started_ns: int
    status: str = "running"
    ended_ns: int | None = None
    version: str | None = None
    owner: str | None = None
    service: str | None = None
    input_hash: str | None = None
    output_hash: str | None = None
    reason: str | None = None  # why it failed, as given to run.fail() or from the exception
    failed_step_id: str | None = None  # the step active when the run failed, if any
    error: ErrorInfo | None = None
    declared_steps: int | None = None  # N in "step k of N", when the workflow declares it
    source: str = "sdk"  # sdk | otlp | import
    attributes: dict[str, Any] = field(default_factory=dict)
    # Who may read the run: an API key of this project (``flightlog keys``). Set once, when
    # the run is first stored (by the ingest key that sent it); never changed afterwards.
    project: str = DEFAULT_PROJECT

    @property
    def duration_ns(self) -> int | None:
        return None if self.ended_ns is None else self.ended_ns - self.started_ns

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["error"] = self.error.to_dict() if self.error else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        kwargs: dict[str, Any] = {
            f.name: data.get(f.name) for f in dataclasses.fields(cls) if f.name in data
        }
        kwargs["error"] = ErrorInfo.from_dict(data.get("error"))
        kwargs["attributes"] = dict(data.get("attributes") or {})
        return cls(**kwargs)


@dataclass(slots=True)
class Step:
    """One decision within a run (an OpenTelemetry span)."""

    run_id: str
    id: str
    name: str
    kind: str
    index: int  # 1-based order of start within the run
    started_ns: int
    parent_id: str | None = None
    agent: str | None = None
    owner: str | None = None
    status: str = "ok"
    ended_ns: int | None = None
    input_hash: str | None = None
    output_hash: str | None = None
    error: ErrorInfo | None = None
    model: str | None = None
    provider: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int | None:
        return None if self.ended_ns is None else self.ended_ns - self.started_ns

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["error"] = self.error.to_dict() if self.error else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        kwargs: dict[str, Any] = {
            f.name: data.get(f.name) for f in dataclasses.fields(cls) if f.name in data
        }
        kwargs["error"] = ErrorInfo.from_dict(data.get("error"))
        kwargs["attributes"] = dict(data.get("attributes") or {})
        return cls(**kwargs)


@dataclass(slots=True, frozen=True)
class Edge:
    """Lineage between two steps of one run: ``source`` fed ``target``.

    ``kind`` is ``parent`` (target runs inside source), ``data`` (an output of source reached
    an input of target) or ``handoff`` (control passed from one agent to another).
    ``evidence`` says how the edge was established: ``identity`` (the same object),
    ``content`` (equal canonical JSON), ``substring`` (the output text appears inside an input
    string), ``declared`` (by the user), ``link`` (an OTel span link), ``parent``.
    """

    run_id: str
    source: str
    target: str
    kind: str = "data"
    evidence: str = "declared"
    detail: str | None = None  # e.g. the parameter the value reached

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Edge:
        kwargs: dict[str, Any] = {
            f.name: data.get(f.name) for f in dataclasses.fields(cls) if f.name in data
        }
        return cls(**kwargs)


@dataclass(slots=True, frozen=True)
class Payload:
    """A captured value: canonical JSON bytes, addressed by the SHA-256 of those bytes.

    When the value was larger than the configured cap, ``data`` holds a truncation marker
    (``{"$truncated": true, "size": ..., "sha256": ..., "preview": ...}``) and ``truncated`` is
    true; ``hash`` is then the hash of the marker, and the marker names the full value's hash.
    """

    hash: str
    data: bytes
    size: int
    truncated: bool = False


@dataclass(slots=True)
class Finding:
    """What a detector saw on a step or a run (OTel event ``gen_ai.evaluation.result``)."""

    id: str
    run_id: str
    detector: str
    severity: str
    message: str
    step_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    created_ns: int = 0
    # What the detector saw, in its own words: ``timeout``, ``empty``, ``budget``, ``check``
    # (a failed ``flightlog.check``), ``broken`` (the detector raised) ...; None for
    # evaluations recorded by other tools and for findings stored before this field existed
    # (``finding_kind`` reads those).
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        kwargs: dict[str, Any] = {
            f.name: data.get(f.name) for f in dataclasses.fields(cls) if f.name in data
        }
        kwargs["evidence"] = dict(data.get("evidence") or {})
        return cls(**kwargs)


def finding_kind(f: Finding) -> str:
    """The kind of a finding: ``f.kind``; for a finding stored before ``kind`` was a field,
    ``check`` for a failed check, else the part of ``evidence["kind"]`` before any ``:``
    (where detectors used to write it, as ``budget:tokens``); ``""`` when there is none."""
    if f.kind:
        return f.kind
    if f.detector == "check":
        return "check"
    return str(f.evidence.get("kind", "")).partition(":")[0]


@dataclass(slots=True)
class Batch:
    """Records written to a store in one transaction.

    Runs and steps are upserts keyed by id (a run is written when it starts and again when
    it ends); edges, payloads and findings are insert-if-absent, so a batch can be
    delivered twice without duplicating anything.
    """

    runs: list[Run] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    payloads: list[Payload] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.runs)
            + len(self.steps)
            + len(self.edges)
            + len(self.payloads)
            + len(self.findings)
        )

    def extend(self, other: Batch) -> None:
        self.runs.extend(other.runs)
        self.steps.extend(other.steps)
        self.edges.extend(other.edges)
        self.payloads.extend(other.payloads)
        self.findings.extend(other.findings)


@dataclass(slots=True)
class RunRecord:
    """A run with everything recorded about it, as read back from a store."""

    run: Run
    steps: list[Step]
    edges: list[Edge]
    findings: list[Finding]

    def step(self, step_id: str) -> Step | None:
        for s in self.steps:
            if s.id == step_id:
                return s
        return None


# An incident's identifying fields, fixed when it opens (``respond_incidents`` columns): the
# response layer logs them in the incident's opening audit entry (``incident.transition`` to
# ``triggered``) and ``audit verify`` (``ledger.coverage``) compares the stored incident with it.
INCIDENT_OPENING_FIELDS: tuple[str, ...] = (
    "fingerprint",
    "workflow",
    "failure_step",
    "root_cause_step",
    "root_cause_agent",
    "error_class",
    "severity",
    "root_cause_team",
    "workflow_team",
    "first_run_id",
)
