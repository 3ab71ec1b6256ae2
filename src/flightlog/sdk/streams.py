"""Steps over generator functions: ``@flightlog.step`` on ``def f(): yield ...`` and on
``async def f(): yield ...`` (streaming model wrappers, retrievers).

The decorated function stays a generator function (an async generator function), so code
that checks ``inspect.isgeneratorfunction`` treats it as before. Its step spans the iteration:

- it starts on the first iteration (``next``/``send``/``__anext__``), when the body starts to
  run; a generator never iterated records nothing. Arguments are bound then.
- it ends when the generator is exhausted (``ok``), raises (``error``, with the exception,
  re-raised unchanged) or is closed before the end (``close()``/``aclose()``, a ``break``
  in the consumer, garbage collection): ``ok`` with ``closed_early: true``, since the consumer
  stopping is not a failure.
- its output is the list of the yielded items: at most ``MAX_ITEMS`` are kept, and no more
  once those kept encode to more than the payload cap (the attribute
  ``yielded`` counts them all; ``items_kept`` says how many the output holds when fewer), and
  the list's JSON is capped at the payload cap like every output.
- the body runs in a context of its own, copied from the consumer's at the first iteration and
  entered around every resume: steps opened in the body are the generator step's children,
  and nothing the body sets in ``contextvars`` (the current step, too) reaches the consumer's
  code between two items.

``send``/``throw``/``close`` (``asend``/``athrow``/``aclose``) pass through to the generator.
Recording never raises into the caller: an internal failure is logged and counted.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextvars import Context, copy_context
from typing import TYPE_CHECKING, Any

from flightlog.payload import encode_value
from flightlog.sdk import state
from flightlog.sdk.context import _internal_error

if TYPE_CHECKING:
    from flightlog.sdk.steps import ActiveStep, StepSpec, _Binder

# Items kept as a generator step's output; beyond it they are counted, not kept.
MAX_ITEMS = 10_000


class _Items:
    """The items kept as the output: at most ``MAX_ITEMS``, and none once those kept encode
    to more than the payload cap (the output would be capped to it anyway), so a long
    stream of large items is not held alive by the recording."""

    __slots__ = ("kept", "count", "size", "full")

    def __init__(self) -> None:
        self.kept: list[Any] = []
        self.count = 0
        self.size = 0
        self.full = False

    def add(self, item: Any) -> None:
        self.count += 1
        if self.full:
            return
        self.kept.append(item)
        try:
            self.size += len(encode_value(item))
        except Exception:  # never raise into the consumer's loop
            _internal_error("measuring a yielded item")
        if len(self.kept) >= MAX_ITEMS or self.size > state.payload_cap:
            self.full = True


def _finish(
    ctx: Context,
    active: ActiveStep,
    items: _Items,
    exc: BaseException | None,
    closed: bool = False,
) -> None:
    from flightlog.sdk.steps import _safe_end

    try:
        attrs = active.record.attributes
        attrs["yielded"] = items.count
        if items.count > len(items.kept):
            attrs["items_kept"] = len(items.kept)
        if closed:
            attrs["closed_early"] = True
        ctx.run(_safe_end, active, items.kept, exc is None, exc)
    except Exception:
        _internal_error("ending a generator step")


def _begin(
    ctx: Context, spec: StepSpec, binder: _Binder, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ActiveStep | None:
    from flightlog.sdk.steps import _safe_begin

    try:
        return ctx.run(_safe_begin, spec, binder, args, kwargs)
    except Exception:  # e.g. the context is already entered (a re-entrant call)
        _internal_error("starting a generator step")
        return None


def _source(
    spec: StepSpec, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The iterator to drive: the generator itself, or what replay answers for it (a live
    generator, or the recorded list of items)."""
    from flightlog.sdk.steps import replay_hook

    hook = replay_hook.get()
    if hook is None:
        return fn(*args, **kwargs)
    return hook(spec.name, fn, args, kwargs)


def wrap_generator(spec: StepSpec, binder: _Binder, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        ctx = copy_context()
        active = _begin(ctx, spec, binder, args, kwargs)
        if active is None:
            return (yield from fn(*args, **kwargs))
        items = _Items()
        try:
            it = ctx.run(_source, spec, fn, args, kwargs)
            if not isinstance(it, Iterator):
                it = iter(it) if isinstance(it, list | tuple) else iter((it,))
        except BaseException as exc:
            _finish(ctx, active, items, exc)
            raise
        send = getattr(it, "send", None)
        throw = getattr(it, "throw", None)
        value: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                if thrown is not None:
                    t, thrown = thrown, None
                    if throw is None:
                        raise t
                    item = ctx.run(throw, t)
                elif value is not None and send is not None:
                    item = ctx.run(send, value)
                else:
                    item = ctx.run(next, it)
            except StopIteration as stop:
                _finish(ctx, active, items, None)
                return stop.value
            except BaseException as exc:
                _finish(ctx, active, items, exc)
                raise
            try:
                items.add(item)
            except Exception:
                _internal_error("keeping a yielded item")
            try:
                value = yield item
            except GeneratorExit:
                close = getattr(it, "close", None)
                try:
                    if close is not None:
                        ctx.run(close)
                except BaseException as exc:
                    _finish(ctx, active, items, exc)
                    raise
                _finish(ctx, active, items, None, closed=True)
                raise
            except BaseException as exc:
                thrown = exc

    return gen_wrapper


@types.coroutine
def _drive(ctx: Context, awaitable: Any) -> Generator[Any, Any, Any]:
    """Await ``awaitable`` with every step of it run inside ``ctx`` (what the event loop sends
    or throws in passes through)."""
    coro = awaitable.__await__()
    value: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            if thrown is not None:
                t, thrown = thrown, None
                signal = ctx.run(coro.throw, t)
            else:
                signal = ctx.run(coro.send, value)
        except StopIteration as stop:
            return stop.value
        try:
            value = yield signal
        except GeneratorExit:
            close = getattr(coro, "close", None)
            if close is not None:
                ctx.run(close)
            raise
        except BaseException as exc:
            value, thrown = None, exc


async def _list_items(items: Any) -> AsyncIterator[Any]:
    for item in items if isinstance(items, list | tuple) else (items,):
        yield item


async def _asource(
    ctx: Context,
    spec: StepSpec,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    it = ctx.run(_source, spec, fn, args, kwargs)
    if inspect.isawaitable(it) and not hasattr(it, "__anext__"):
        it = await _drive(ctx, it)
    if not hasattr(it, "__anext__"):
        it = _list_items(it)
    return it


def wrap_async_generator(
    spec: StepSpec, binder: _Binder, fn: Callable[..., Any]
) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        ctx = copy_context()
        active = _begin(ctx, spec, binder, args, kwargs)
        items = _Items()
        try:
            it = await _asource(ctx, spec, fn, args, kwargs)
        except BaseException as exc:
            if active is not None:
                _finish(ctx, active, items, exc)
            raise
        asend = getattr(it, "asend", None)
        athrow = getattr(it, "athrow", None)
        value: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                if thrown is not None:
                    t, thrown = thrown, None
                    if athrow is None:
                        raise t
                    item = await _drive(ctx, athrow(t))
                elif value is not None and asend is not None:
                    item = await _drive(ctx, asend(value))
                else:
                    item = await _drive(ctx, it.__anext__())
            except StopAsyncIteration:
                if active is not None:
                    _finish(ctx, active, items, None)
                return
            except BaseException as exc:
                if active is not None:
                    _finish(ctx, active, items, exc)
                raise
            if active is not None:
                try:
                    items.add(item)
                except Exception:
                    _internal_error("keeping a yielded item")
            try:
                value = yield item
            except GeneratorExit:
                aclose = getattr(it, "aclose", None)
                try:
                    if aclose is not None:
                        await _drive(ctx, aclose())
                except BaseException as exc:
                    if active is not None:
                        _finish(ctx, active, items, exc)
                    raise
                if active is not None:
                    _finish(ctx, active, items, None, closed=True)
                raise
            except BaseException as exc:
                thrown = exc

    return agen_wrapper


__all__ = ["MAX_ITEMS", "wrap_async_generator", "wrap_generator"]
