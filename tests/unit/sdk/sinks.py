"""Sinks for the writer's tests: real ``Sink`` implementations with a controllable pace."""

from __future__ import annotations

import time
from typing import Any

from flightlog.model import Batch


class SlowSink:
    """A ``Sink`` that takes ``delay`` seconds per batch and remembers the runs and the
    drop counts reported to it."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.runs: list[str] = []
        self.drop_reports: list[tuple[str, str | None, int]] = []

    def write(self, batch: Batch) -> None:
        time.sleep(self.delay)
        self.runs.extend(r.id for r in batch.runs)

    def drain(self, timeout: float) -> int:
        return 0

    def report_undelivered(self) -> None:
        pass

    def report_drops(self, recorder: str, service: str | None, dropped: int) -> None:
        self.drop_reports.append((recorder, service, dropped))

    def stats(self) -> dict[str, Any]:
        return {"sink": "slow"}

    def close(self) -> None:
        pass
