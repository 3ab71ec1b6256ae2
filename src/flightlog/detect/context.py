"""What a detector sees: one run, its decoded payloads, and the workflow's successful history.

``RunContext`` wraps a ``RunRecord`` and decodes step inputs and outputs on demand.
``History`` holds, for one workflow, samples of every step (by name) from its successful runs,
so detectors can say "empty where it is usually not" or "a shape never seen before". Histories
are cached per (store, workflow) and rebuilt when the number of successful runs changes.
"""

from __future__ import annotations

import hashlib
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from flightlog.model import Finding, RunRecord, Step
from flightlog.store.base import RunQuery

T = TypeVar("T")

# How many of a workflow's most recent successful runs form its history.
HISTORY_RUNS = 50
_MISSING = object()


def decode(data: bytes | None) -> Any:
    """Canonical JSON bytes -> value; a capture-truncation marker stays a dict."""
    if data is None:
        return _MISSING
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace")


def is_capture_marker(value: Any) -> bool:
    """True for the marker the SDK stores instead of an over-size value."""
    return isinstance(value, dict) and value.get("$truncated") is True


def finding_id(run_id: str, step_id: str | None, detector: str, kind: str) -> str:
    """A stable id per (run, step, detector, kind): re-running a detector never duplicates."""
    key = f"{run_id}|{step_id or '-'}|{detector}|{kind}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(slots=True)
class StepSample:
    """One occurrence of a step in a successful run."""

    run_id: str
    output: Any
    input: Any
    duration_ns: int | None
    attributes: dict[str, Any]
    model: str | None
    run_started_ns: int
    _fields: dict[str, Any] | None = None
    _input_text: str | None = None

    def fields(self) -> dict[str, Any]:
        """``features.field_map`` of the output, computed once (histories are reused)."""
        if self._fields is None:
            from flightlog.detect.features import field_map

            ok = self.output is not _MISSING and self.output is not None
            self._fields = field_map(self.output) if ok else {}
        return self._fields

    def input_text(self) -> str:
        """Every string in the input, joined (for "does the output echo the input")."""
        if self._input_text is None:
            from flightlog.detect.features import strings

            self._input_text = "\n".join(strings(self.input, limit=2000))
        return self._input_text


@dataclass(slots=True)
class History:
    """Successful runs of one workflow, indexed by step name."""

    workflow: str
    run_ids: list[str] = field(default_factory=list)
    step_counts: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    samples: dict[str, list[StepSample]] = field(default_factory=dict)
    _without: dict[tuple[str, str], list[StepSample]] = field(default_factory=dict, repr=False)
    # Derived baselines (per step name and path), computed once per history.
    memo: dict[Any, Any] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return len(self.run_ids)

    def of(self, step_name: str, exclude_run: str | None = None) -> list[StepSample]:
        samples = self.samples.get(step_name, [])
        if exclude_run is None or exclude_run not in self.run_ids:
            return samples
        key = (step_name, exclude_run)
        hit = self._without.get(key)
        if hit is None:
            hit = self._without[key] = [s for s in samples if s.run_id != exclude_run]
        return hit

    def median_steps(self) -> int | None:
        if not self.step_counts:
            return None
        return int(round(statistics.median(self.step_counts)))


class _HistoryCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> [successful runs counted at build, history, lookups since]
        self._entries: dict[tuple[int, str, str], list[Any]] = {}

    def get(self, store: Any, workflow: str) -> History:
        key = (id(store), getattr(store, "url", ""), workflow)
        with self._lock:
            hit = self._entries.get(key)
            # Each lookup follows at most one new run, so a history of N >= 20 runs cannot
            # have grown by a tenth before N/10 lookups: skip counting until then (a COUNT
            # over the workflow's runs after every run is O(N) per run).
            if hit is not None and hit[0] >= 20 and hit[2] < hit[0] // 10:
                hit[2] += 1
                return hit[1]  # type: ignore[no-any-return]
        count = store.count_runs(RunQuery(workflow=workflow, status="succeeded"))
        # Rebuild when the history has grown by a tenth (or is small): a run-end hook on a
        # busy workflow must not re-read 50 runs after every run.
        if hit is not None and (hit[0] == count or (count >= 20 and count - hit[0] < count / 10)):
            with self._lock:
                hit[2] = 0  # counted just now: the next N/10 lookups may skip counting
            return hit[1]  # type: ignore[no-any-return]
        history = load_history(store, workflow)
        with self._lock:
            self._entries[key] = [count, history, 0]
        return history

    def observe(self, ctx: RunContext) -> None:
        """Fold a run that just ended into its workflow's cached history (the most recent
        ``HISTORY_RUNS`` successful runs), so the run-end pipeline never re-reads a history
        because of a run it has just seen: the baseline changes once per successful run, at
        a cost that does not grow with the runs stored. A history not cached yet is left to
        be loaded when first needed."""
        run = ctx.run
        if run.status != "succeeded":
            return
        key = (id(ctx.store), getattr(ctx.store, "url", ""), run.workflow)
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or run.id in hit[1].run_ids:
                return
            old: History = hit[1]
        new = History(workflow=old.workflow)
        _add_record(new, ctx.record, ctx._load_payloads())
        keep = old.run_ids[: HISTORY_RUNS - 1]
        kept = set(keep)
        new.run_ids.extend(keep)
        new.step_counts.extend(old.step_counts[: len(keep)])
        new.tokens.extend(old.tokens[: len(keep)])
        new.costs.extend(old.costs[: len(keep)])
        for name, samples in old.samples.items():
            new.samples.setdefault(name, []).extend(x for x in samples if x.run_id in kept)
        with self._lock:
            if self._entries.get(key) is hit:
                hit[0] += 1  # one more successful run than counted, and it is in the history
                hit[1] = new

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


history_cache = _HistoryCache()


MAX_SAMPLES_PER_RUN = 8  # samples of one step name taken from one run


def load_history(store: Any, workflow: str, limit: int = HISTORY_RUNS) -> History:
    """Read the workflow's most recent successful runs and sample every step."""
    history = History(workflow=workflow)
    runs = store.list_runs(RunQuery(workflow=workflow, status="succeeded", limit=limit))
    records = [store.get_record(r.id) for r in runs]
    hashes: set[str] = set()
    for rec in records:
        for s in rec.steps:
            if s.output_hash:
                hashes.add(s.output_hash)
            if s.input_hash:
                hashes.add(s.input_hash)
    payloads = store.get_payloads(hashes) if hashes else {}
    for rec in records:
        _add_record(history, rec, payloads)
    return history


def _add_record(history: History, rec: RunRecord, payloads: dict[str, bytes]) -> None:
    """Append one successful run's figures and step samples to ``history``."""
    history.run_ids.append(rec.run.id)
    history.step_counts.append(len(rec.steps))
    history.tokens.append(sum((s.input_tokens or 0) + (s.output_tokens or 0) for s in rec.steps))
    history.costs.append(sum(s.cost or 0.0 for s in rec.steps))
    per_name: dict[str, int] = {}
    for s in rec.steps:
        if s.status == "error":
            continue
        # A step repeated many times in one run (an agent loop) contributes a bounded
        # sample, so a long run cannot make every detector quadratic.
        seen = per_name[s.name] = per_name.get(s.name, 0) + 1
        if seen > MAX_SAMPLES_PER_RUN:
            continue
        history.samples.setdefault(s.name, []).append(
            StepSample(
                run_id=rec.run.id,
                output=decode(payloads.get(s.output_hash)) if s.output_hash else None,
                input=decode(payloads.get(s.input_hash)) if s.input_hash else None,
                duration_ns=s.duration_ns,
                attributes=s.attributes,
                model=s.model,
                run_started_ns=rec.run.started_ns,
            )
        )


class RunContext:
    """One run as detectors see it: the record, decoded payloads and the workflow's history."""

    def __init__(self, store: Any, record: RunRecord, history: History | None = None) -> None:
        self.store = store
        self.record = record
        self.run = record.run
        self.steps = record.steps
        self.history = history if history is not None else History(workflow=record.run.workflow)
        self._by_id = {s.id: s for s in record.steps}
        self._payloads: dict[str, bytes] | None = None
        self._values: dict[str, Any] = {}
        self.now_ns = time.time_ns()
        # A run that is itself part of the history gets baselines without it, computed here.
        own = record.run.id in set(self.history.run_ids)
        self._memo: dict[Any, Any] = {} if own else self.history.memo

    @classmethod
    def load(cls, store: Any, run_id: str, *, with_history: bool = True) -> RunContext:
        record = store.get_record(run_id)
        history = history_cache.get(store, record.run.workflow) if with_history else None
        return cls(store, record, history)

    def step(self, step_id: str | None) -> Step | None:
        return self._by_id.get(step_id) if step_id else None

    def _load_payloads(self) -> dict[str, bytes]:
        if self._payloads is None:
            hashes = [h for s in self.steps for h in (s.input_hash, s.output_hash) if h]
            self._payloads = self.store.get_payloads(hashes) if hashes else {}
        return self._payloads

    def _decoded(self, h: str | None) -> Any:
        if not h:
            return None
        try:
            return self._values[h]
        except KeyError:
            value = decode(self._load_payloads().get(h))
            value = self._values[h] = None if value is _MISSING else value
            return value

    def output(self, step: Step) -> Any:
        """The step's decoded output (None when it recorded none). Shared: do not mutate."""
        return self._decoded(step.output_hash)

    def has_output(self, step: Step) -> bool:
        return bool(step.output_hash) and step.output_hash in self._load_payloads()

    def input(self, step: Step) -> Any:
        """The step's decoded input (its arguments by name). Shared: do not mutate."""
        return self._decoded(step.input_hash)

    def baseline(self, step: Step) -> list[StepSample]:
        """Samples of the same step (by name) from the workflow's successful runs."""
        return self.memo(
            ("base", step.name), lambda: self.history.of(step.name, exclude_run=self.run.id)
        )

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()`` once per history (per run, if the run is part of its history)."""
        try:
            return self._memo[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def finding(
        self,
        detector: str,
        kind: str,
        message: str,
        *,
        step: Step | None = None,
        severity: str = "error",
        **evidence: Any,
    ) -> Finding:
        """Build a finding with a stable id for (run, step, detector, kind).

        ``kind`` may name what it is about after a colon (``budget:tokens``,
        ``number:total``): the finding's ``kind`` is the part before it; the whole string stays
        in ``evidence["kind"]`` and keys the id, as before ``kind`` was a field."""
        step_id = step.id if step else None
        return Finding(
            id=finding_id(self.run.id, step_id, detector, kind),
            run_id=self.run.id,
            detector=detector,
            severity=severity,
            message=message,
            step_id=step_id,
            evidence={"kind": kind, **evidence},
            created_ns=self.now_ns,
            kind=kind.partition(":")[0],
        )


def present(samples: Iterable[StepSample]) -> list[Any]:
    """The outputs of samples that recorded one."""
    return [s.output for s in samples if s.output is not _MISSING and s.output is not None]


def present_samples(samples: Iterable[StepSample]) -> list[StepSample]:
    """The samples that recorded an output."""
    return [s for s in samples if s.output is not _MISSING and s.output is not None]
