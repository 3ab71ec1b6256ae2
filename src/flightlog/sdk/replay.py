"""Counterfactual replay: re-execute a recorded run, correcting one step, and see whether the
failure goes away.

``replay(fn, run_id, override={...})`` calls the workflow function ``fn`` with the run's
recorded input. Every ``@flightlog.step`` call inside it is answered from the recording (the
k-th call of a step gets the k-th recorded output of that step; a recorded exception is raised
again) unless it is overridden or listed in ``live`` (then it executes for real). Steps the
recording does not have (the replay took another path) execute live. Nothing is written to the
store: the replayed run is captured in memory and reported as a ``Replay``.

``decisive_step(fn, store, run_id)`` applies the method of DESIGN.md: for each candidate on the
attribution's chain, earliest first, replace its output by the same step's output in the most
recent successful run (one with the same input if there is one); the decisive step is the
earliest whose correction turns the failure into success.
"""

from __future__ import annotations

import builtins
import copy
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightlog.detect.context import decode, is_capture_marker
from flightlog.errors import InputError
from flightlog.model import Finding, Run, Step
from flightlog.sdk.records import Record, RunEvent, Submitter
from flightlog.store.base import RunQuery

if TYPE_CHECKING:
    from flightlog.store.base import Store


class RecordedError(Exception):
    """A recorded exception raised again during replay (its type was not a builtin)."""


@dataclass(slots=True)
class Replay:
    """The outcome of one counterfactual re-execution."""

    run_id: str
    override: dict[str, Any]
    status: str  # "succeeded" | "failed"
    reason: str | None = None
    failed_checks: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)  # index, name, source
    output: Any = None
    replay_run_id: str | None = None  # the stored replayed run (``record_to``)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "override": self.override,
            "status": self.status,
            "reason": self.reason,
            "failed_checks": self.failed_checks,
            "steps": self.steps,
            "replay_run_id": self.replay_run_id,
        }


class _Capture:
    """Stands in for the SDK's writer: keeps the replayed run's records in memory, and hands
    them to ``tee`` (a writer storing the replayed run, marked as a replay) when given."""

    def __init__(self, tee: Submitter | None = None, original: str = "") -> None:
        self.items: list[Record] = []
        self.tee = tee
        self.original = original

    def submit(self, item: Record) -> None:
        self.items.append(item)
        if self.tee is not None:
            if isinstance(item, RunEvent):
                run = item.run
                run.source = "replay"
                run.attributes = {**run.attributes, "flightlog.replay_of": self.original}
            self.tee.submit(item)


_replaying: ContextVar[bool] = ContextVar("flightlog_replaying", default=False)


def replaying() -> bool:
    """True inside a counterfactual replay: tools with side effects (sending mail, paying)
    can check it, because steps the recording cannot answer execute for real. (A fire
    drill intercepts steps through the same hook, but is not a replay.)"""
    return _replaying.get()


def _raise_recorded(step: Step) -> None:
    err = step.error
    etype = (err.type if err else "Exception").rsplit(".", 1)[-1]
    message = err.message if err else "recorded error"
    cls = getattr(builtins, etype, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        raise cls(message)
    raise RecordedError(f"{etype}: {message}")


class _Player:
    def __init__(
        self, recorded: dict[str, list[tuple[Step, Any]]], override: dict[Any, Any], live: set[str]
    ) -> None:
        self.recorded = recorded
        self.override = override
        self.live = live
        self.calls: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []

    def _same_input(
        self, step: Step, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> bool:
        from flightlog.payload import encode_value
        from flightlog.sdk.recorder import _Binder

        if step.input_hash is None:
            return True
        data = encode_value(_Binder(fn).bind(args, kwargs))
        return hashlib.sha256(data).hexdigest() == step.input_hash

    def _override_for(self, name: str, k: int, step: Step | None) -> tuple[bool, Any]:
        for key in (f"{name}#{k}", name, step.index if step else None):
            if key is not None and key in self.override:
                return True, self.override[key]
        return False, None

    def __call__(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self.calls[name] += 1
        k = self.calls[name]
        recs = self.recorded.get(name, [])
        rec = recs[k - 1] if k <= len(recs) else None
        hit, value = self._override_for(name, k, rec[0] if rec else None)
        entry = {"index": len(self.log) + 1, "name": name, "occurrence": k}
        self.log.append(entry)
        if hit:
            entry["source"] = "override"
            return copy.deepcopy(value)
        if name in self.live or rec is None:
            entry["source"] = "live"
            return fn(*args, **kwargs)
        step, output = rec
        if not self._same_input(step, fn, args, kwargs):
            # Its input changed (an upstream correction reached it): the recording no
            # longer answers for it, so it runs for real.
            entry["source"] = "live (input changed)"
            return fn(*args, **kwargs)
        if step.status == "error":
            entry["source"] = "recorded error"
            _raise_recorded(step)
        entry["source"] = "recorded"
        return copy.deepcopy(output)


def _recorded_outputs(store: Store, run_id: str) -> tuple[Run, dict[str, list[tuple[Step, Any]]]]:
    record = store.get_record(run_id)
    steps = record.steps
    hashes = [h for s in steps for h in (s.output_hash,) if h]
    if record.run.input_hash:
        hashes.append(record.run.input_hash)
    payloads = store.get_payloads(hashes)
    out: dict[str, list[tuple[Step, Any]]] = {}
    for s in sorted(steps, key=lambda s: s.index):
        value = decode(payloads.get(s.output_hash)) if s.output_hash else None
        if is_capture_marker(value):
            value = None
        out.setdefault(s.name, []).append((s, value))
    record.run.attributes = {
        **record.run.attributes,
        "_input": decode(payloads.get(record.run.input_hash or "")),
    }
    return record.run, out


_NO_INPUT = object()


def replay(
    fn: Callable[..., Any],
    run_id: str,
    override: dict[Any, Any] | None = None,
    *,
    store: Store | None = None,
    live: Iterable[str] = (),
    input: Any = _NO_INPUT,
    record_to: Submitter | None = None,
) -> Replay:  # noqa: A002
    """Re-execute ``fn`` (the workflow function, called with the run's recorded input) against
    the recording of ``run_id``, with ``override`` = {step name | "name#k" | step index: value}.

    Uses the configured store unless ``store`` is given. Nothing is recorded, unless
    ``record_to`` (an SDK writer, ``flightlog.sdk.state.writer()``) is given: then the
    replayed run is stored as a new run with ``source = "replay"`` and the attribute
    ``flightlog.replay_of`` naming the original (``Replay.replay_run_id``).
    """
    from flightlog.sdk import recorder, state

    close = False
    if store is None:
        from flightlog.sdk.forensics import configured_store

        store, close = configured_store()
    try:
        run_id = store.resolve_run_id(run_id)
        run, recorded = _recorded_outputs(store, run_id)
    finally:
        if close:
            store.close()
    if input is _NO_INPUT:
        value = run.attributes.get("_input")
        recorded_input = isinstance(value, (dict, list, str, int, float, bool))
        args: tuple[Any, ...] = (value,) if recorded_input else ()
    else:
        args = (input,)
    capture = _Capture(record_to, run_id)
    player = _Player(recorded, dict(override or {}), set(live))
    t1 = state.writer_override.set(capture)
    t2 = recorder.replay_hook.set(player)
    t3 = _replaying.set(True)
    output: Any = None
    error: BaseException | None = None
    try:
        output = fn(*args)
    except Exception as exc:  # the replayed workflow may fail: that is an answer
        error = exc
    finally:
        _replaying.reset(t3)
        recorder.replay_hook.reset(t2)
        state.writer_override.reset(t1)
    ended = [i.run for i in capture.items if isinstance(i, RunEvent) and i.ended]
    checks = [f.message for f in capture.items if isinstance(f, Finding) and f.detector == "check"]
    if ended:
        status, reason = ended[-1].status, ended[-1].reason
    elif error is not None:
        status, reason = "failed", f"{type(error).__name__}: {error}"
    else:
        status, reason = ("failed" if checks else "succeeded"), None
    if status not in ("succeeded", "failed"):
        status = "failed" if error or checks else "succeeded"
    out = Replay(
        run_id,
        {str(k): v for k, v in (override or {}).items()},
        status,
        reason,
        checks,
        player.log,
        output,
    )
    if record_to is not None and ended:
        out.replay_run_id = ended[-1].id
    return out


def passing_output(store: Store, run: Run, step: Step) -> tuple[bool, Any]:
    """The output of the same step in a successful run of the workflow: one with the same
    input if there is one, else the most recent."""
    runs = store.list_runs(RunQuery(workflow=run.workflow, status="succeeded", limit=50))
    best: tuple[bool, Any] = (False, None)
    for other in runs:
        steps = [s for s in store.get_steps(other.id) if s.name == step.name and s.output_hash]
        if not steps:
            continue
        s = steps[0]
        value = decode(store.get_payloads([s.output_hash or ""]).get(s.output_hash or ""))
        if other.input_hash and other.input_hash == run.input_hash:
            return True, value
        if not best[0]:
            best = (True, value)
    return best


@dataclass(slots=True)
class Counterfactual:
    decisive: dict[str, Any] | None
    tried: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"decisive": self.decisive, "tried": self.tried}


def decisive_step(
    fn: Callable[..., Any], store: Store, run_id: str, candidates: Iterable[str] | None = None
) -> Counterfactual:
    """The earliest candidate step whose correction (its output from a passing run) turns the
    failure into success. Candidates default to the attribution's chain, earliest first."""
    from flightlog.forensics.attribution import why

    run_id = store.resolve_run_id(run_id)
    record = store.get_record(run_id)
    if record.run.status != "failed":
        raise InputError(
            f"run {run_id} {record.run.status}; counterfactual replay needs a failed run"
        )
    by_id = {s.id: s for s in record.steps}
    if candidates is None:
        att = why(store, run_id)
        ids = [c.id for c in att.chain]
        ids += [a["step"]["id"] for a in att.alternatives if a["step"]["id"] not in ids]
        steps = sorted((by_id[i] for i in ids if i in by_id), key=lambda s: s.index)
    else:
        wanted = set(candidates)
        steps = [s for s in record.steps if s.name in wanted]
    tried = []
    for s in steps:
        ok, value = passing_output(store, record.run, s)
        if not ok:
            tried.append({"step": s.name, "index": s.index, "result": "no passing output"})
            continue
        result = replay(
            fn, run_id, {f"{s.name}#{_occurrence(record.steps, s)}": value}, store=store
        )
        tried.append(
            {"step": s.name, "index": s.index, "result": result.status, "reason": result.reason}
        )
        if result.succeeded:
            return Counterfactual(
                {
                    "step": s.name,
                    "index": s.index,
                    "agent": s.agent,
                    "owner": s.owner,
                    "replacement": value,
                },
                tried,
            )
    return Counterfactual(None, tried)


def _occurrence(steps: list[Step], step: Step) -> int:
    return sum(1 for s in steps if s.name == step.name and s.index <= step.index)
