"""What the recording API hands to the background writer, and what flushing waits on.

A record is one of: ``StepDone`` (a finished step with the JSON snapshots of its input and
output), ``RunEvent`` (a run started or ended), an ``Edge`` or ``Finding`` as recorded, or a
``Batch`` of records made elsewhere. ``FlushMarker`` travels through the same queue: it is
released once everything queued before it is durable (and, when asked, has been through
the run-end hooks).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from flightlog.model import Batch, Edge, Finding, Run, Step


@dataclass(slots=True)
class StepDone:
    """A finished step as the caller hands it over: the record plus raw JSON snapshots."""

    step: Step
    input_json: bytes | None
    output_json: bytes | None
    identity_sources: Sequence[tuple[str, str]] = ()  # (source step, parameter) by identity


@dataclass(slots=True)
class RunEvent:
    """A run started or ended, with the JSON snapshots of its input / output."""

    run: Run
    input_json: bytes | None = None
    output_json: bytes | None = None
    ended: bool = False


Record: TypeAlias = StepDone | RunEvent | Edge | Finding | Batch


class Submitter(Protocol):
    """What the recording API hands records to: the background writer, or a stand-in (replay
    captures a re-executed run in memory)."""

    def submit(self, record: Record) -> None: ...


@dataclass(slots=True)
class FlushMarker:
    """Released (``done`` set) once what was queued before it is durable; ``ok`` is False
    when a record since the previous marker was lost. With ``hooks`` it is released only
    after the run-end hooks of those records ran."""

    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = True
    hooks: bool = True

    def release(self, ok: bool | None = None) -> None:
        if ok is not None:
            self.ok = ok
        self.done.set()
