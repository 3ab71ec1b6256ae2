"""The recorder's context: the current run and step, ids, and internal-error handling.

Context travels in ``contextvars``: each thread and each asyncio task sees its own current
run and step, so concurrent runs never mix. Nothing the recorder does raises into user code:
an internal failure is logged and counted (``flightlog.stats()["errors"]``) and the user's
function runs exactly as it would without Flightlog.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from flightlog.model import ErrorInfo
from flightlog.sdk import state

if TYPE_CHECKING:
    from flightlog.sdk.runs import ActiveRun
    from flightlog.sdk.steps import ActiveStep

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


def _json_safe(attributes: dict[str, Any]) -> dict[str, Any]:
    import orjson

    from flightlog.payload import encode_value as enc

    return {str(k): orjson.loads(enc(v)) for k, v in attributes.items()}
