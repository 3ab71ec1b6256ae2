"""Routing in the manner of Prometheus Alertmanager: the tree, grouping, inhibition, silences.

An *alert* is one incident told to one audience: ``role=root_cause`` (the owner of the
root-cause step, paged) or ``role=workflow_owner`` (the workflow's owner, notified). Its
labels are ``workflow``, ``severity``, ``team``, ``agent``, ``step`` (the root-cause step),
``role``, ``failure_step``, ``incident``, ``fingerprint`` and ``error``.

- **Tree** (``match_routes``): the root takes every alert; children are tried in order and
  the first that matches takes it, unless it says ``continue = true`` (then later siblings
  are tried too); a node none of whose children match takes the alert itself.
- **Groups** (``group_key``, ``flush_due``): alerts of one route, one destination and equal
  ``group_by`` labels are sent together: first after ``group_wait``, then whenever the group
  changed at most once per ``group_interval``, and again every ``repeat_interval`` while it
  still fires.
- **Inhibition** (``inhibited_by``): an alert is muted while another, active alert explains
  it: by configured ``inhibit_rules`` (source/target matchers, ``equal`` labels), and by
  causality: an open incident whose root cause is upstream in the causal chain that contains
  this incident's root cause (same workflow) explains it; it is a downstream symptom.
- **Silences** (``silenced_by``): matchers with an expiry; muted until they expire.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flightlog.respond.config import InhibitRule, Route, Silence, matches_all


@dataclass(frozen=True)
class AlertFacts:
    """What routing needs to know about one alert."""

    incident_id: int
    role: str
    labels: Mapping[str, str]
    status: str  # triggered | acknowledged | resolved (the incident's)
    chain: tuple[str, ...]  # step names, root cause -> failure point


def match_routes(route: Route, labels: Mapping[str, str]) -> list[Route]:
    """The routes that take an alert with ``labels`` (Alertmanager semantics)."""
    if not matches_all(route.matchers, labels):
        return []
    taken: list[Route] = []
    for child in route.routes:
        hit = match_routes(child, labels)
        if hit:
            taken.extend(hit)
            if not child.continue_:
                break
    return taken or [route]


def group_key(route: Route, channels: Sequence[str], labels: Mapping[str, str]) -> str:
    """Identity of a group: route, destination and the values of its ``group_by`` labels."""
    names = sorted(labels) if "..." in route.group_by else list(route.group_by)
    values = ",".join(f"{n}={labels.get(n, '')}" for n in names)
    return f"{route.id}:{'+'.join(channels)}:{{{values}}}"


def group_labels(route: Route, labels: Mapping[str, str]) -> dict[str, str]:
    names = sorted(labels) if "..." in route.group_by else list(route.group_by)
    return {n: labels.get(n, "") for n in names}


def silenced_by(
    labels: Mapping[str, str], silences: Sequence[Silence], now_ns: int
) -> Silence | None:
    """The first active silence whose matchers all match, else None."""
    for s in silences:
        if s.active(now_ns) and matches_all(s.matchers, labels):
            return s
    return None


def inhibited_by(
    alert: AlertFacts,
    active: Sequence[AlertFacts],
    rules: Sequence[InhibitRule],
    *,
    causal: bool = True,
) -> str | None:
    """Why ``alert`` is inhibited (a short reason naming the inhibiting incident), or None.

    Only alerts of unresolved incidents inhibit.
    """
    if alert.status == "resolved":
        return None
    for src in active:
        if src.incident_id == alert.incident_id or src.status == "resolved":
            continue
        if causal and src.labels.get("workflow") == alert.labels.get("workflow"):
            src_rc = src.labels.get("step", "")
            rc = alert.labels.get("step", "")
            if (
                src_rc
                and rc
                and rc != src_rc
                and rc in src.chain
                and src_rc in src.chain
                and src.chain.index(src_rc) < src.chain.index(rc)
            ):
                return (
                    f"incident #{src.incident_id}: root cause {src_rc} is upstream of "
                    f"this incident's root cause {rc}"
                )
        for rule in rules:
            if (
                matches_all(rule.target_matchers, alert.labels)
                and matches_all(rule.source_matchers, src.labels)
                and all(src.labels.get(n, "") == alert.labels.get(n, "") for n in rule.equal)
            ):
                return f"incident #{src.incident_id} (inhibit rule)"
    return None


@dataclass(frozen=True)
class GroupState:
    first_ns: int
    last_sent_ns: int | None
    last_hash: str | None


def content_hash(items: Sequence[tuple[int, str, str, int]]) -> str:
    """Hash of a group's visible content: (incident, role, status, run count) per alert."""
    text = ";".join(f"{i}/{r}/{s}/{n}" for i, r, s, n in sorted(items))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flush_due(route: Route, state: GroupState, digest: str, firing: bool, now_ns: int) -> bool:
    """Whether a group should be notified now (Alertmanager's dispatcher timing)."""
    if state.last_sent_ns is None:
        return now_ns >= state.first_ns + route.group_wait_ns
    since = now_ns - state.last_sent_ns
    if digest != state.last_hash and since >= route.group_interval_ns:
        return True
    return firing and since >= route.repeat_interval_ns
