"""Recording: runs, steps, checks, usage, explicit edges.

Context travels in ``contextvars``: each thread and each asyncio task sees its own current
run and step, so concurrent runs never mix. Nothing here raises into user code: an internal
failure is logged and counted (``flightlog.stats()["errors"]``) and the user's function runs
exactly as it would without Flightlog.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
import itertools
import logging
import os
import random
import time
import traceback
import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, TypeVar, overload

from flightlog.model import Edge, ErrorInfo, Finding, Run, Step
from flightlog.payload import encode_value, make_payload
from flightlog.sdk import state
from flightlog.sdk.lineage import IdentityIndex
from flightlog.sdk.writer import RunEvent, StepDone

log = logging.getLogger("flightlog")

F = TypeVar("F", bound=Callable[..., Any])

_run: ContextVar[ActiveRun | None] = ContextVar("flightlog_run", default=None)
_step: ContextVar[ActiveStep | None] = ContextVar("flightlog_step", default=None)

_ORIGIN_ATTR = "__flightlog_origin__"


# Ids come from a PRNG seeded from the OS (as OpenTelemetry's SDK does): os.urandom costs a
# system call per id, too slow for the hot path. Re-seeded in a forked child.
_rng = random.Random(os.urandom(32))
_getrandbits = _rng.getrandbits


def _new_trace_id() -> str:
    return f"{_getrandbits(128) or 1:032x}"


def _new_span_id() -> str:
    return f"{_getrandbits(64) or 1:016x}"


def _reseed() -> None:
    _rng.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def _internal_error(what: str) -> None:
    state.errors += 1
    if state.errors == 1 or state.errors % 1000 == 0:
        log.exception("flightlog internal error while %s (recording continues)", what)


def _error_info(exc: BaseException, step_id: str | None) -> ErrorInfo:
    origin = getattr(exc, _ORIGIN_ATTR, None) or step_id
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        tb = None
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__}>"
    return ErrorInfo(
        type=f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        message=message[:4096],
        traceback=tb[-16384:] if tb else None,
        origin_step_id=origin,
    )


def _mark_origin(exc: BaseException, step_id: str) -> None:
    if getattr(exc, _ORIGIN_ATTR, None) is None:
        with contextlib.suppress(Exception):
            setattr(exc, _ORIGIN_ATTR, step_id)


class ActiveRun:
    """A run being recorded. Returned by ``with flightlog.run(...) as run``."""

    __slots__ = (
        "record",
        "_index",
        "identities",
        "_token",
        "_outcome",
        "_output",
        "_has_output",
        "_implicit",
        "_last_step_id",
        "_ended",
        "_input_json",
    )

    def __init__(self, record: Run, *, implicit: bool = False) -> None:
        self.record = record
        self._index = itertools.count(1)
        self.identities = IdentityIndex()
        self._token: Token[ActiveRun | None] | None = None
        self._outcome: tuple[str, str | None, str | None] | None = None
        self._output: Any = None
        self._has_output = False
        self._implicit = implicit
        self._last_step_id: str | None = None
        self._ended = False
        self._input_json: bytes | None = None

    @property
    def id(self) -> str:
        """The run id (an OpenTelemetry trace id: 32 hex digits)."""
        return self.record.id

    @property
    def workflow(self) -> str:
        return self.record.workflow

    def next_index(self) -> int:
        return next(self._index)

    def fail(self, reason: str = "failed") -> None:
        """Mark the run failed, with a reason; the current step (if any) is where it surfaced."""
        step = _step.get()
        self._outcome = ("failed", str(reason), step.id if step else None)

    def succeed(self, output: Any = None) -> None:
        """Mark the run succeeded (optionally with its output)."""
        self._outcome = ("succeeded", None, None)
        if output is not None:
            self.set_output(output)

    def set_output(self, output: Any) -> None:
        """Record the run's final output."""
        self._output = output
        self._has_output = True

    def annotate(self, **attributes: Any) -> None:
        """Add free attributes to the run."""
        try:
            self.record.attributes.update(_json_safe(attributes))
        except Exception:
            _internal_error("annotating a run")

    # -- context manager ---------------------------------------------------------------------
    def __enter__(self) -> ActiveRun:
        self._start()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._finish(exc)

    async def __aenter__(self) -> ActiveRun:
        self._start()
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._finish(exc)

    def _start(self) -> None:
        self._token = _run.set(self)
        try:
            rec = self.record
            w = state.writer()
            if w is not None:
                w.submit(
                    RunEvent(
                        dataclasses.replace(rec, attributes=dict(rec.attributes)),
                        input_json=self._input_json,
                    )
                )
        except Exception:
            _internal_error("starting a run")

    def _finish(self, exc: BaseException | None) -> None:
        if self._token is not None:
            try:
                _run.reset(self._token)
            except ValueError:  # exited in another context (e.g. a different task)
                _run.set(None)
            self._token = None
        if self._ended:
            return
        self._ended = True
        try:
            rec = self.record
            rec.ended_ns = time.time_ns()
            if isinstance(exc, GeneratorExit):
                rec.status = "unknown"
                rec.reason = "abandoned: the generator holding the run was closed before it ended"
            elif exc is not None:
                info = _error_info(exc, None)
                rec.status = "failed"
                rec.error = info
                rec.reason = f"{info.type}: {info.message}"[:4096]
                rec.failed_step_id = info.origin_step_id
            elif self._outcome is not None:
                rec.status, rec.reason, rec.failed_step_id = self._outcome
            else:
                rec.status = "succeeded"
            output_json = encode_value(self._output) if self._has_output else None
            w = state.writer()
            if w is not None:
                w.submit(
                    RunEvent(
                        dataclasses.replace(rec, attributes=dict(rec.attributes)),
                        output_json=output_json,
                        ended=True,
                    )
                )
        except Exception:
            _internal_error("ending a run")


def _json_safe(attributes: dict[str, Any]) -> dict[str, Any]:
    import orjson

    from flightlog.payload import encode_value as enc

    return {str(k): orjson.loads(enc(v)) for k, v in attributes.items()}


def run(
    workflow: str,
    *,
    owner: str | None = None,
    input: Any = None,  # noqa: A002 - the public name in DESIGN.md
    version: str | None = None,
    steps: int | None = None,
    attributes: dict[str, Any] | None = None,
) -> ActiveRun:
    """Record one run of ``workflow``: ``with flightlog.run("claims-triage") as run:``.

    ``steps`` declares how many steps the workflow has (N in "failed at step k of N").
    An exception escaping the block fails the run and is re-raised unchanged.
    """
    try:
        state.ensure_configured()
        rec = Run(
            id=_new_trace_id(),
            workflow=str(workflow),
            started_ns=time.time_ns(),
            owner=owner,
            version=version,
            service=state.service,
            declared_steps=steps,
            attributes=_json_safe(attributes) if attributes else {},
        )
        active = ActiveRun(rec)
        if input is not None:
            active._input_json = encode_value(input)
        return active
    except Exception:
        _internal_error("creating a run")
        return ActiveRun(Run(id=_new_trace_id(), workflow=str(workflow), started_ns=time.time_ns()))


class ActiveStep:
    """A step being recorded: ``flightlog.current_step()`` returns it."""

    __slots__ = (
        "record",
        "run",
        "_token",
        "_run_token",
        "output",
        "_has_output",
        "_input",
        "_sources",
        "_spec",
        "_arg_ids",
    )

    def __init__(self, record: Step, active_run: ActiveRun, spec: StepSpec | None = None) -> None:
        self.record = record
        self.run = active_run
        self._token: Token[ActiveStep | None] | None = None
        self._run_token: Token[ActiveRun | None] | None = None
        self.output: Any = None
        self._has_output = False
        self._input: bytes | None = None
        self._sources: list[tuple[str, str]] = []  # (producing step id, parameter) by identity
        self._spec = spec
        self._arg_ids: frozenset[int] = frozenset()

    @property
    def id(self) -> str:
        return self.record.id

    def set_output(self, value: Any) -> None:
        self.output = value
        self._has_output = True

    def annotate(self, **attributes: Any) -> None:
        try:
            self.record.attributes.update(_json_safe(attributes))
        except Exception:
            _internal_error("annotating a step")


def _begin_step(spec: StepSpec, arguments: dict[str, Any] | None) -> ActiveStep | None:
    """Open a step under the current run (or an implicit run). None if recording is off."""
    active_run = _run.get()
    implicit: ActiveRun | None = None
    if active_run is None:
        if not state.ensure_configured():
            return None
        implicit = ActiveRun(
            Run(
                id=_new_trace_id(),
                workflow=spec.name,
                started_ns=time.time_ns(),
                owner=spec.owner,
                service=state.service,
                attributes={"implicit": True},
            ),
            implicit=True,
        )
        implicit._start()
        active_run = implicit
    parent = _step.get()
    rec = Step(
        run_id=active_run.record.id,
        id=_new_span_id(),
        name=spec.name,
        kind=spec.kind,
        index=active_run.next_index(),
        started_ns=time.time_ns(),
        parent_id=parent.record.id if parent is not None and parent.run is active_run else None,
        agent=spec.agent,
        owner=spec.owner,
        status="running",
        model=spec.model,
        attributes=dict(spec.attributes) if spec.attributes else {},
    )
    active = ActiveStep(rec, active_run, spec)
    if implicit is not None:
        active._run_token = implicit._token
    if arguments is not None:
        active._input = _capped(encode_value(arguments))
        active._arg_ids = frozenset(map(id, arguments.values()))
        try:
            active._sources = active_run.identities.sources(arguments)
        except Exception:  # an index mutated by another thread: lineage only, never the step
            _internal_error("matching identity lineage")
    active._token = _step.set(active)
    return active


def _capped(data: bytes) -> bytes:
    """Apply the payload cap on the caller's side so an oversized value is not held queued."""
    cap = state.payload_cap
    if len(data) <= cap:
        return data
    return make_payload(data, cap).data


def _end_step(active: ActiveStep, output: Any, has_output: bool, exc: BaseException | None) -> None:
    rec = active.record
    if active._has_output:
        output, has_output = active.output, True
    if active._token is not None:
        try:
            _step.reset(active._token)
        except ValueError:  # ended in another context than it started in
            _step.set(None)
    rec.ended_ns = time.time_ns()
    if exc is not None:
        _mark_origin(exc, rec.id)
        rec.status = "error"
        rec.error = _error_info(exc, rec.id)
        output_json = None
    else:
        rec.status = "ok"
        output_json = _capped(encode_value(output)) if has_output else None
        # A step that returns one of its own arguments (a pass-through guardrail) did not
        # produce that object: later uses of it are not lineage from this step.
        if has_output and id(output) not in active._arg_ids:
            try:
                active.run.identities.add_output(rec.id, output)
            except Exception:
                _internal_error("indexing an output for lineage")
    identity_sources = active._sources
    active.run._last_step_id = rec.id
    w = state.writer()
    if w is not None:
        w.submit(StepDone(rec, active._input, output_json, identity_sources))
    if active.run._implicit and active._run_token is not None:
        implicit = active.run
        if exc is not None:
            implicit._finish(exc)
        else:
            implicit._finish(None)


# Counterfactual replay (flightlog.sdk.replay) answers steps from a recorded run:
# ``hook(step_name, fn, args, kwargs)`` returns the step's result (recorded, given or live).
replay_hook: ContextVar[
    Callable[[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any] | None
] = ContextVar("flightlog_replay_hook", default=None)


def _call(
    spec: StepSpec, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    hook = replay_hook.get()
    if hook is None:
        return fn(*args, **kwargs)
    return hook(spec.name, fn, args, kwargs)


async def _acall(
    spec: StepSpec, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    hook = replay_hook.get()
    if hook is None:
        return await fn(*args, **kwargs)
    result = hook(spec.name, fn, args, kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


class StepSpec:
    """What ``@flightlog.step(...)`` returns: a decorator, and a context manager.

    As a context manager (``with flightlog.step("lookup", kind="tool") as s:``) it records
    the block; set ``s.set_output(value)`` to record an output.
    """

    __slots__ = ("name", "kind", "agent", "owner", "model", "attributes")

    def __init__(
        self,
        name: str | None,
        kind: str,
        agent: str | None,
        owner: str | None,
        model: str | None,
        attributes: dict[str, Any] | None,
    ) -> None:
        self.name = name or ""
        self.kind = kind
        self.agent = agent
        self.owner = owner
        self.model = model
        self.attributes = attributes

    def __call__(self, fn: F) -> F:
        # A spec reused for several functions names each step after its own function.
        spec = StepSpec(
            self.name or getattr(fn, "__name__", "step"),
            self.kind,
            self.agent,
            self.owner,
            self.model,
            self.attributes,
        )
        binder = _Binder(fn)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                active = _safe_begin(spec, binder, args, kwargs)
                if active is None:
                    return await fn(*args, **kwargs)
                try:
                    result = await _acall(spec, fn, args, kwargs)
                except BaseException as exc:
                    _safe_end(active, None, False, exc)
                    raise
                _safe_end(active, result, True, None)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            active = _safe_begin(spec, binder, args, kwargs)
            if active is None:
                return fn(*args, **kwargs)
            try:
                result = _call(spec, fn, args, kwargs)
            except BaseException as exc:
                _safe_end(active, None, False, exc)
                raise
            _safe_end(active, result, True, None)
            return result

        return wrapper  # type: ignore[return-value]

    # -- context manager form ----------------------------------------------------------------
    def __enter__(self) -> ActiveStep | _NullStep:
        active = None
        try:
            if not self.name:
                self.name = "step"
            active = _begin_step(self, None)
        except Exception:
            _internal_error("starting a step")
        return active if active is not None else _NullStep()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        # The step this entry opened is the current one in this context (each thread and
        # task has its own), so one spec can be entered concurrently and nested.
        active = _step.get()
        if active is not None and active._spec is self:
            _safe_end(active, None, False, exc)

    async def __aenter__(self) -> ActiveStep | _NullStep:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


class _NullStep:
    """Stands in for a step when recording is off."""

    id = ""

    def set_output(self, value: Any) -> None:
        pass

    def annotate(self, **attributes: Any) -> None:
        pass


def _safe_begin(
    spec: StepSpec, binder: _Binder, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ActiveStep | None:
    try:
        return _begin_step(spec, binder.bind(args, kwargs))
    except Exception:
        _internal_error("starting a step")
        return None


def _safe_end(active: ActiveStep, output: Any, has_output: bool, exc: BaseException | None) -> None:
    try:
        _end_step(active, output, has_output, exc)
    except Exception:
        _internal_error("ending a step")


class _Binder:
    """Binds call arguments to parameter names, decided once per function."""

    __slots__ = ("names", "simple", "sig", "skip_first")

    def __init__(self, fn: Callable[..., Any]) -> None:
        try:
            self.sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self.sig = None
        params = list(self.sig.parameters.values()) if self.sig else []
        self.skip_first = bool(params) and params[0].name in ("self", "cls")
        self.simple = all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
        self.names = tuple(p.name for p in params)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.simple and len(args) <= len(self.names):
            bound = dict(zip(self.names, args, strict=False))
            if kwargs:
                bound.update(kwargs)
        elif self.sig is not None:
            try:
                ba = self.sig.bind_partial(*args, **kwargs)
                bound = dict(ba.arguments)
            except TypeError:
                bound = {"args": list(args), **kwargs}
        else:
            bound = {"args": list(args), **kwargs}
        if self.skip_first and self.names:
            bound.pop(self.names[0], None)
        return bound


@overload
def step(fn: F) -> F: ...


@overload
def step(
    fn: None = None,
    *,
    kind: str = "function",
    agent: str | None = None,
    owner: str | None = None,
    name: str | None = None,
    model: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> StepSpec: ...


def step(
    fn: Callable[..., Any] | str | None = None,
    *,
    kind: str = "function",
    agent: str | None = None,
    owner: str | None = None,
    name: str | None = None,
    model: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Any:
    """Record each call of a function as a step (sync or async), or a block as a step.

    ``@flightlog.step``, ``@flightlog.step(kind="tool", agent="retriever", owner="search")``,
    or ``with flightlog.step("lookup", kind="tool") as s:``. Arguments are recorded bound to
    parameter names; the return value as the output; an exception as the error (re-raised
    unchanged).
    """
    if isinstance(fn, str):
        return StepSpec(fn, kind, agent, owner, model, attributes)
    spec = StepSpec(name, kind, agent, owner, model, attributes)
    if fn is not None:
        return spec(fn)
    return spec


def current_run() -> ActiveRun | None:
    """The run recorded in this context, or None."""
    return _run.get()


def current_step() -> ActiveStep | None:
    """The step recorded in this context, or None."""
    return _step.get()


def check(ok: Any, name: str, message: str = "", severity: str = "error", **evidence: Any) -> bool:
    """Record the outcome of a check on the current step (or run); returns ``bool(ok)``.

    A failed check becomes a ``Finding`` (detector ``check``) that detection and attribution
    use as evidence of fault. Passing checks are noted on the step's attributes.
    """
    try:
        passed = bool(ok)
    except Exception:
        passed = False
    try:
        active_step = _step.get()
        active_run = _run.get()
        if active_step is not None:
            checks = active_step.record.attributes.setdefault("flightlog.checks", {})
            if isinstance(checks, dict):
                checks[str(name)] = passed
        if passed:
            return True
        run_id = active_run.id if active_run else (active_step.run.id if active_step else None)
        if run_id is None:
            log.warning("flightlog.check(%r) failed outside any run: %s", name, message)
            return False
        w = state.writer()
        if w is not None:
            w.submit(
                Finding(
                    id=uuid.uuid4().hex,
                    run_id=run_id,
                    step_id=active_step.id if active_step else None,
                    detector="check",
                    severity=severity
                    if severity in ("info", "warning", "error", "critical")
                    else "error",
                    message=str(message or f"check {name} failed"),
                    evidence={"check": str(name), **_json_safe(evidence)},
                    created_ns=time.time_ns(),
                    kind="check",
                )
            )
    except Exception:
        _internal_error("recording a check")
    return passed


def usage(
    *,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cost: float | None = None,
    model: str | None = None,
    provider: str | None = None,
) -> None:
    """Record token usage and cost (and the model) on the current step; amounts add up."""
    try:
        active = _step.get()
        if active is None:
            return
        rec = active.record
        if input_tokens is not None:
            rec.input_tokens = (rec.input_tokens or 0) + int(input_tokens)
        if output_tokens is not None:
            rec.output_tokens = (rec.output_tokens or 0) + int(output_tokens)
        if cost is not None:
            rec.cost = (rec.cost or 0.0) + float(cost)
        if model is not None:
            rec.model = str(model)
        if provider is not None:
            rec.provider = str(provider)
    except Exception:
        _internal_error("recording usage")


def annotate(**attributes: Any) -> None:
    """Add free attributes to the current step (or, outside steps, the current run)."""
    active = _step.get()
    if active is not None:
        active.annotate(**attributes)
        return
    r = _run.get()
    if r is not None:
        r.annotate(**attributes)


def edge(
    source: str, target: str | None = None, *, kind: str = "data", detail: str | None = None
) -> None:
    """Declare lineage the automatic capture cannot see: ``source`` step fed ``target``.

    ``target`` defaults to the current step. Step ids come from ``flightlog.current_step().id``.
    """
    try:
        active = _step.get()
        tgt = target or (active.id if active else None)
        r = _run.get() or (active.run if active else None)
        if tgt is None or r is None:
            log.warning("flightlog.edge(%r) outside a step: nothing recorded", source)
            return
        w = state.writer()
        if w is not None:
            w.submit(Edge(r.id, str(source), str(tgt), kind, "declared", detail))
    except Exception:
        _internal_error("declaring an edge")


def wrap(fn: F) -> F:
    """Carry the current run and step into ``fn`` when it runs on another thread.

    Threads do not inherit ``contextvars``: a step called from a ``ThreadPoolExecutor``
    inside a run would otherwise start an implicit run of its own. Use
    ``pool.submit(flightlog.wrap(search), query)`` (or ``pool.map(flightlog.wrap(f), ...)``).
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def in_context(*args: Any, **kwargs: Any) -> Any:
        return captured.copy().run(fn, *args, **kwargs)

    return in_context  # type: ignore[return-value]
