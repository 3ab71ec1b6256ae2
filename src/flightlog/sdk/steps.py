"""Steps: ``@flightlog.step`` / ``with flightlog.step(...)``, and what one call records.

The caller's thread pays for this module on every step, so it does only what must happen
there: bind the arguments, snapshot them and the output as JSON (capped), match identity
lineage, and hand one ``StepDone`` to the background writer. Hashing, content lineage,
scrubbing and storage happen on the writer's thread (``flightlog.sdk.processing``).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token
from typing import Any, overload

from flightlog.model import Run, Step
from flightlog.payload import encode_value, make_payload
from flightlog.sdk import state
from flightlog.sdk.context import (
    F,
    _error_info,
    _internal_error,
    _json_safe,
    _mark_origin,
    _new_span_id,
    _new_trace_id,
    _run,
    _step,
)
from flightlog.sdk.lineage import identity_indexable
from flightlog.sdk.records import StepDone
from flightlog.sdk.runs import ActiveRun


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
        "_arguments",
    )

    def __init__(self, record: Step, active_run: ActiveRun, spec: StepSpec | None = None) -> None:
        self.record = record
        self.run = active_run
        self._token: Token[ActiveStep | None] | None = None
        self._run_token: Token[ActiveRun | None] | None = None
        self.output: Any = None
        self._has_output = False
        self._input: bytes | None = None
        # (producing step id, parameter) by identity; the shared empty tuple when none
        self._sources: Sequence[tuple[str, str]] = ()
        self._spec = spec
        self._arguments: dict[str, Any] | None = None

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
        attributes=_attributes(spec.attributes) if spec.attributes else {},
    )
    active = ActiveStep(rec, active_run, spec)
    if implicit is not None:
        active._run_token = implicit._token
    if arguments is not None:
        data = encode_value(arguments)
        active._input = data if len(data) <= state.payload_cap else _capped(data)
        active._arguments = arguments
        identities = active_run.identities
        if identities:
            try:
                active._sources = identities.sources(arguments)
            except Exception:  # an index mutated by another thread: lineage only
                _internal_error("matching identity lineage")
    active._token = _step.set(active)
    return active


def _is_argument(value: Any, arguments: dict[str, Any] | None) -> bool:
    if arguments:
        for v in arguments.values():
            if v is value:
                return True
    return False


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
        if has_output:
            output_json = encode_value(output)
            if len(output_json) > state.payload_cap:
                output_json = _capped(output_json)
            # A step that returns one of its own arguments (a pass-through guardrail) did not
            # produce that object: later uses of it are not lineage from this step.
            if identity_indexable(output) and not _is_argument(output, active._arguments):
                try:
                    active.run.identities.add_output(rec.id, output)
                except Exception:
                    _internal_error("indexing an output for lineage")
        else:
            output_json = None
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


def _attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """A step's attributes as given to ``flightlog.step``, as JSON (as ``annotate`` and
    ``flightlog.run`` take them): text keys; a tuple, a set, a dict subclass or an object as
    the JSON recorded for it, so that what is scrubbed is what is stored. A copy as it is
    when every key is a text and every value a JSON scalar (the usual case)."""
    for k, v in attributes.items():
        t = type(v)
        if type(k) is not str or not (
            t is str or v is None or t is bool or t is float or (t is int and _I64 <= v < _U64)
        ):
            return _json_safe(attributes)
    return dict(attributes)


_I64, _U64 = -(2**63), 2**64


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

        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            from flightlog.sdk import streams

            if inspect.isasyncgenfunction(fn):
                return streams.wrap_async_generator(spec, binder, fn)  # type: ignore[return-value]
            return streams.wrap_generator(spec, binder, fn)  # type: ignore[return-value]

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
            try:
                active = _begin_step(spec, binder.bind(args, kwargs))
            except Exception:
                _internal_error("starting a step")
                active = None
            if active is None:
                return fn(*args, **kwargs)
            try:
                hook = replay_hook.get()
                result = fn(*args, **kwargs) if hook is None else hook(spec.name, fn, args, kwargs)
            except BaseException as exc:
                _safe_end(active, None, False, exc)
                raise
            try:
                _end_step(active, result, True, None)
            except Exception:
                _internal_error("ending a step")
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
    """Record each call of a function as a step (sync or async, generators included), or a
    block as a step.

    ``@flightlog.step``, ``@flightlog.step(kind="tool", agent="retriever", owner="search")``,
    or ``with flightlog.step("lookup", kind="tool") as s:``. Arguments are recorded bound to
    parameter names; the return value as the output; an exception as the error (re-raised
    unchanged). A generator function's step spans its iteration and records the yielded
    items as its output (``flightlog.sdk.streams``).
    """
    if isinstance(fn, str):
        return StepSpec(fn, kind, agent, owner, model, attributes)
    spec = StepSpec(name, kind, agent, owner, model, attributes)
    if fn is not None:
        return spec(fn)
    return spec
