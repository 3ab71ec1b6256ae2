"""Runs: ``flightlog.run(...)`` and the ``ActiveRun`` it returns (start and end records,
outcome, output, attributes)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from contextvars import Token
from typing import Any

from flightlog.model import Run
from flightlog.payload import encode_value
from flightlog.sdk import state
from flightlog.sdk.context import (
    _error_info,
    _internal_error,
    _json_safe,
    _new_trace_id,
    _run,
    _step,
)
from flightlog.sdk.lineage import IdentityIndex
from flightlog.sdk.records import RunEvent

log = logging.getLogger("flightlog")


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
        """Mark the run succeeded (optionally with its output).

        An explicit failure stands: after ``fail()``, ``succeed()`` does not change the
        outcome (it logs a warning naming both calls); its output is still recorded.
        """
        if output is not None:
            self.set_output(output)
        outcome = self._outcome
        if outcome is not None and outcome[0] == "failed":
            log.warning(
                "flightlog: run.succeed() after run.fail(%r) on run %s (%s) is ignored: "
                "the run stays failed",
                outcome[1],
                self.record.id,
                self.record.workflow,
            )
            return
        self._outcome = ("succeeded", None, None)

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
