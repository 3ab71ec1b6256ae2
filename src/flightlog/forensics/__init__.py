"""Forensics: failure point, attribution of the root-cause step, postmortem reports.

``why(store, run_id) -> Attribution`` is the entry point; ``flightlog.why(run_id)`` does the
same on the configured store. See docs/forensics.md.
"""

from __future__ import annotations

from flightlog.forensics.attribution import Attribution, StepRef, attribute, why

__all__ = ["Attribution", "StepRef", "attribute", "why"]
