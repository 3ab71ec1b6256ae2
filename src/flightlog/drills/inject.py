"""Injecting faults into named steps of any workflow instrumented with ``@flightlog.step``.

``with injected(faults, seed=7) as log:`` makes every call of a named step meet its fault
(with the fault's probability, drawn from one RNG seeded once, so a drill repeats exactly);
``log`` lists what was injected, in order. It works through the SDK's step interceptor
(``flightlog.sdk.recorder.replay_hook``, the hook counterfactual replay uses), chaining to an
interceptor already in place. Nothing is changed in the workflow's code.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flightlog.drills.custom import arming
from flightlog.drills.faults import Fault

Call = Callable[[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


@dataclass
class Injection:
    step: str
    kind: str
    occurrence: int  # the k-th call of the step within this context
    effective: bool = True  # False: the fault left the step's result unchanged


class Injector:
    """The interceptor: decides per call whether a fault fires, and applies it."""

    def __init__(self, faults: Sequence[Fault], rng: random.Random, previous: Call | None):
        self.by_step: dict[str, list[Fault]] = {}
        for f in faults:
            self.by_step.setdefault(f.step, []).append(f)
        self.rng = rng
        self.previous = previous
        self.log: list[Injection] = []
        self.calls: dict[str, int] = {}

    def _real(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if self.previous is not None:
            return self.previous(name, fn, args, kwargs)
        return fn(*args, **kwargs)

    def __call__(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self.calls[name] = self.calls.get(name, 0) + 1
        fault = None
        for f in self.by_step.get(name, ()):
            if f.probability >= 1.0 or self.rng.random() < f.probability:
                fault = f
                break
        if fault is None:
            return self._real(name, fn, args, kwargs)
        entry = Injection(name, fault.kind, self.calls[name])
        self.log.append(entry)
        if fault.kind == "custom":
            fault.before()  # checks the name is given
            with arming({name: str(fault.params["name"])}):
                return self._real(name, fn, args, kwargs)
        if inspect.iscoroutinefunction(fn):
            return self._async(fault, entry, name, fn, args, kwargs)
        if not fault.alters_result():
            fault.before()
        return self._alter(fault, entry, self._real(name, fn, args, kwargs))

    @staticmethod
    def _alter(fault: Fault, entry: Injection, result: Any) -> Any:
        altered = fault.after(result)
        if fault.alters_result():
            try:
                entry.effective = bool(altered != result or type(altered) is not type(result))
            except Exception:  # values that cannot be compared: assume it changed
                entry.effective = True
        return altered

    async def _async(
        self,
        fault: Fault,
        entry: Injection,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not fault.alters_result():
            if fault.kind == "latency":
                import asyncio

                await asyncio.sleep(float(fault.params.get("seconds", 0.05)))
                fault = Fault(fault.step, fault.kind, 1.0, {**fault.params, "seconds": 0})
            fault.before()
        result = self._real(name, fn, args, kwargs)
        if inspect.isawaitable(result):
            result = await result
        return self._alter(fault, entry, result)


@contextmanager
def injected(
    faults: Sequence[Fault], *, seed: int | str = 0, rng: random.Random | None = None
) -> Iterator[list[Injection]]:
    """Inject ``faults`` into the steps called inside the block; yields the injection log."""
    from flightlog.sdk.recorder import replay_hook

    injector = Injector(faults, rng or random.Random(seed), replay_hook.get())
    token = replay_hook.set(injector)
    try:
        yield injector.log
    finally:
        replay_hook.reset(token)
