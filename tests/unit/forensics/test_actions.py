"""The postmortem's action items: the fire drill it proposes names a real drill fault."""

from __future__ import annotations

from flightlog.drills.faults import KINDS
from flightlog.forensics.actions import FAULT_FOR, fault_for


def test_every_proposed_fault_is_a_drill_fault_kind() -> None:
    unknown = {fault for _evidence, fault in FAULT_FOR} - set(KINDS)
    assert not unknown, f"forensics/actions.py proposes fault kinds drills lack: {unknown}"
    assert fault_for(set()) in KINDS


def test_the_first_matching_evidence_decides() -> None:
    assert fault_for({"empty", "timeout"}) == "latency"  # timeout comes first in FAULT_FOR
    assert fault_for(["empty"]) == "empty"
    assert fault_for("empty") == "exception"  # not a collection of kinds: the default
