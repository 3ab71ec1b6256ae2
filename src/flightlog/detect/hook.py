"""The run-end hook: detect, then attribute failed runs (registered in
``flightlog.pipeline.BUILTIN_HOOKS``; runs in the background writer's wake or on ingestion)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("flightlog.detect")


def on_runs_ended(store: Any, run_ids: Sequence[str]) -> None:
    """Store detector findings for each ended run; attribute and audit each failed one.

    Idempotent: finding ids are stable and an attribution is recorded once per run.
    """
    from flightlog.detect import detect
    from flightlog.forensics.attribution import why
    from flightlog.forensics.ledger import record_attribution
    from flightlog.model import FAULT_STATUSES

    for run_id in run_ids:
        try:
            run = store.get_run(run_id)
            if run is None or run.status == "running":
                continue
            detect(store, run_id, write=True)
            if run.status in FAULT_STATUSES:
                record_attribution(store, why(store, run_id))
        except Exception:  # one bad run must not stop the others
            log.exception("detection/attribution failed for run %s", run_id)
