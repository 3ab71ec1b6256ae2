"""Escalation: a page nobody acknowledged goes up the team's escalation policy.

A ``root_cause`` alert of a triggered incident, first notified at T, escalates to level k+1
of its team's ``escalation`` list once ``after`` has passed since T (unless it is muted):
the level's channels get an ``escalation`` notice, the level is stored with the alert and
the step is on the incident's timeline. Acknowledging (or resolving) stops it.
"""

from __future__ import annotations

from flightlog.respond import alerts as alerts_mod
from flightlog.respond import incidents as inc_mod
from flightlog.respond.channels import Notice
from flightlog.respond.config import NS, RespondConfig
from flightlog.respond.notify import Notifier, TickResult, queue_notice
from flightlog.respond.owners import team_of
from flightlog.store.base import Store


class Escalator:
    """Escalates the unacknowledged pages of one store (see the module docstring)."""

    def __init__(self, store: Store, config: RespondConfig, notifier: Notifier) -> None:
        self.store = store
        self.config = config
        self.notifier = notifier

    def escalate(self, result: TickResult, now: int) -> None:
        with inc_mod.transaction(self.store) as tx:
            loaded = alerts_mod.load(tx)
            facts = [a.facts() for a in loaded]
            for alert, fa in zip(loaded, facts, strict=True):
                incident, role, team = alert.incident, alert.role, alert.team
                first_ns, level = alert.first_notified_ns, alert.escalation_level
                if role != "root_cause" or incident.status != "triggered" or first_ns is None:
                    continue
                levels = team_of(self.config, team).escalation
                if level >= len(levels):
                    continue
                nxt = levels[level]
                if now < first_ns + nxt.after_ns or self.notifier.mute_reason(fa, facts, now):
                    continue
                note = (
                    f"Not acknowledged within {nxt.after_ns / NS / 60:g} min: escalated to "
                    f"level {level + 1} of {team}'s escalation policy."
                )
                notice = Notice(
                    kind="escalation",
                    receiver=f"{team}:escalation-{level + 1}",
                    group_key=f"escalation:{incident.id}:{level + 1}",
                    group_labels={"incident": str(incident.id)},
                    alerts=[alerts_mod.view(self.config, incident, role, team)],
                    note=note,
                )
                queue_notice(
                    tx,
                    self.config,
                    notice,
                    nxt.channels,
                    key=f"e-{incident.id}-{level + 1}",
                    incident_ids=[incident.id],
                    now_ns=now,
                )
                tx.execute(
                    "UPDATE respond_alerts SET escalation_level = ? WHERE incident_id = ?"
                    " AND role = ?",
                    (level + 1, incident.id, role),
                )
                inc_mod.add_timeline(
                    tx,
                    incident.id,
                    now,
                    "escalated",
                    "flightlog",
                    {"level": level + 1, "team": team, "channels": list(nxt.channels)},
                )
                result.escalations += 1
