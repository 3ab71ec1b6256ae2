"""What to do next: the action items of a postmortem, and the owner it names.

The items follow from the kinds of evidence found on the root-cause step (``finding_kind``);
one proposes a fire drill that reproduces the failure (``fault_for``: the drill fault kind for
that evidence, a name of ``flightlog.drills.faults.KINDS``, which a test checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flightlog.model import Finding, Step, finding_kind

if TYPE_CHECKING:
    from flightlog.forensics.attribution import Attribution

# Evidence kind -> the drill fault that reproduces it, first match wins.
FAULT_FOR = (
    ("prompt_injection", "injection"),
    ("timeout", "latency"),
    ("truncated", "truncate"),
    ("short", "truncate"),
    ("empty", "empty"),
    ("fields", "missing_field"),
    ("ungrounded", "corrupt_field"),
    ("number", "corrupt_field"),
    ("type", "malformed_json"),
    ("http_error", "rate_limit"),
)


def fault_for(kinds: object) -> str:
    """The fault kind that reproduces a failure whose evidence has these kinds."""
    found = set(kinds) if isinstance(kinds, (set, list, tuple, frozenset)) else set()
    for evidence, fault in FAULT_FOR:
        if evidence in found:
            return fault
    return "exception"


def kinds_of(findings: list[Finding]) -> set[str]:
    return {finding_kind(f) for f in findings}


def action_items(att: Attribution, root: Step | None, root_findings: list[Finding]) -> list[str]:
    if root is None:
        return ["Record steps in this workflow (flightlog.step) so failures can be attributed."]
    name, owner = root.name, root.owner or "the owning team"
    kinds = kinds_of(root_findings)
    items: list[str] = []
    rules = [
        (
            "empty",
            f"Make {name} fail loudly (or fall back) when it returns nothing, and add a "
            f"check right after it so the failure surfaces at its cause ({owner}).",
        ),
        (
            "fields",
            f"Validate the response schema of {name} and add a contract test for the "
            f"fields its consumers read ({owner}).",
        ),
        ("type", f"Validate the response type of {name} at its boundary ({owner})."),
        (
            "stale",
            f"Put a maximum age on what {name} serves from cache and refresh or fail when "
            f"it is exceeded ({owner}).",
        ),
        ("number", f"Add a plausibility range check on {name}'s output ({owner})."),
        (
            "category",
            f"Restrict {name}'s output to the allowed values and reject others ({owner}).",
        ),
        ("short", f"Detect short or partial outputs of {name} ({owner})."),
        (
            "truncated",
            f"Raise the token limit of {name} or treat finish_reason=length as an error ({owner}).",
        ),
        ("refusal", f"Detect refusals from {name} and retry or escalate to a human ({owner})."),
        (
            "prompt_injection",
            f"Treat content returned by {name} as untrusted: quote or filter "
            f"it before it reaches a model ({owner}).",
        ),
        (
            "timeout",
            f"Review the timeout and retry budget of {name}; add a fallback or circuit "
            f"breaker ({owner}).",
        ),
        (
            "loop",
            f"Add an iteration guard to agent {root.agent or name} so it stops repeating "
            f"the same action ({owner}).",
        ),
        (
            "attr",
            f"Roll back the prompt/model change on {name} and gate such changes on an "
            f"evaluation ({owner}).",
        ),
        (
            "ungrounded",
            f"Ground {name}'s extracted fields: verify each against its input ({owner}).",
        ),
        (
            "http_error",
            f"Make {name} raise on error responses instead of passing them on ({owner}).",
        ),
        (
            "error_field",
            f"Make {name} raise on error payloads instead of passing them on ({owner}).",
        ),
        (
            "error_text",
            f"Make {name} raise on error responses instead of passing them on ({owner}).",
        ),
        (
            "exception",
            f"Handle the exception raised in {name}, or fail earlier with a clearer "
            f"error ({owner}).",
        ),
        ("check", f"Investigate the failed check in {name} ({owner})."),
    ]
    for kind, text in rules:
        if kind in kinds:
            items.append(text)
    if not items:
        items.append(
            f"Investigate {name}: no detector explains its fault yet; add a check on "
            f"its output ({owner})."
        )
    if att.root_cause and att.failure_point and att.root_cause.id != att.failure_point.id:
        fp = att.failure_point
        items.append(
            f"Add a guard between step {att.root_cause.index} and step {fp.index} so "
            f"this class of fault is caught where it starts, not where it surfaces."
        )
    items.append(
        f'Turn this failure into a fire drill: a DRILL.toml with [[fault]] step = "{name}" '
        f'kind = "{fault_for(kinds)}", run with `flightlog drill DRILL.toml` in CI, proves '
        "that detection, attribution and paging still catch it (docs/drills.md)."
    )
    if att.hypothesis:
        items.append(
            "Confirm the root cause by hand: the attribution is a hypothesis "
            f"(confidence {att.confidence:.2f})."
        )
    return items


def owner_of(workflow: str, step: Step | None, code_owner: str | None) -> str | None:
    """The owner recorded in code, else the one flightlog.toml's [[owners]] rules name (the
    same resolution the response layer routes alerts by), with the rule that decided it."""
    if code_owner:
        return code_owner
    try:
        from flightlog.config import load_config
        from flightlog.owners import OwnerQuery, owner_rules, resolve, step_query

        rules = owner_rules(load_config())
        if not rules:
            return None
        match = resolve(rules, step_query(workflow, step) if step else OwnerQuery(workflow))
    except Exception:  # no or invalid ownership configuration: the report still renders
        return None
    rule = f" (owners rule {match.rule.number})" if match.rule else ""
    return f"{match.team}{rule}"
