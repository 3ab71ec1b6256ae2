"""Notification: alerts -> routing tree -> groups -> rendered messages in the outbox.

Each alert that may still need telling is matched against the routing tree (``routing``);
a route with the ``owner`` receiver sends a ``root_cause`` alert to its team's ``pager``
channels and any other role to the team's ``channels``. Alerts of one group (route, channels,
``group_by`` labels) go out together when the group is due (``group_wait``,
``group_interval``, ``repeat_interval``); silenced or inhibited alerts are left out, and
becoming muted (or unmuted) is on the incident's timeline. ``queue_notice`` renders a notice
through each channel's type and queues the messages (``outbox.enqueue``), in the
transaction of the state change that caused them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from flightlog import _json
from flightlog.respond import alerts as alerts_mod
from flightlog.respond import incidents as inc_mod
from flightlog.respond.alerts import Alert
from flightlog.respond.channels import Notice, render
from flightlog.respond.config import OWNER_RECEIVER, RespondConfig, Route
from flightlog.respond.incidents import Incident
from flightlog.respond.outbox import enqueue
from flightlog.respond.owners import team_of
from flightlog.respond.routing import (
    AlertFacts,
    GroupState,
    content_hash,
    flush_due,
    group_key,
    group_labels,
    inhibited_by,
    match_routes,
    silenced_by,
)
from flightlog.store.base import Store, Tx


@dataclass
class TickResult:
    notifications: int = 0
    escalations: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    muted: dict[str, str] = field(default_factory=dict)  # "incident/role" -> reason


def queue_notice(
    tx: Tx,
    config: RespondConfig,
    notice: Notice,
    channel_names: Iterable[str],
    *,
    key: str,
    incident_ids: list[int],
    now_ns: int,
    suffixed: bool = True,
) -> int:
    """Render ``notice`` on each channel and queue the messages under ``key-CHANNEL[-SUFFIX]``
    (idempotent by that id); a per-incident message counts for its incident only. Returns
    how many messages the notice became."""
    count = 0
    for name in channel_names:
        channel = config.channels[name]
        for msg in render(channel, notice):
            enqueue(
                tx,
                key=f"{key}-{name}" + (f"-{msg.suffix}" if suffixed and msg.suffix else ""),
                channel=channel,
                kind=notice.kind,
                message=msg,
                incident_ids=[msg.incident_id] if msg.incident_id else incident_ids,
                group_key=notice.group_key,
                now_ns=now_ns,
            )
            count += 1
    return count


@dataclass
class _Group:
    route: Route
    channels: tuple[str, ...]
    labels: dict[str, str]
    members: list[tuple[Alert, str | None]] = field(default_factory=list)  # (alert, muted)


class Notifier:
    """Routes, groups and queues the notifications of one store's alerts."""

    def __init__(self, store: Store, config: RespondConfig) -> None:
        self.store = store
        self.config = config

    def mute_reason(self, facts: AlertFacts, everyone: list[AlertFacts], now: int) -> str | None:
        """Why an alert is not told now (a silence, an inhibition), or None."""
        s = silenced_by(facts.labels, self.config.silences, now)
        if s is not None:
            return f"silenced by {s.id}" + (f" ({s.comment})" if s.comment else "")
        return inhibited_by(
            facts, everyone, self.config.inhibit_rules, causal=self.config.causal_inhibition
        )

    def channels_for(self, route: Route, role: str, team: str) -> tuple[str, ...]:
        if route.receiver != OWNER_RECEIVER:
            return route.channels
        t = team_of(self.config, team)
        return t.pager if role == "root_cause" else t.channels

    def flush(self, result: TickResult, now: int) -> None:
        """Queue the notifications of every group that is due."""
        if self.config.route is None:
            return
        with inc_mod.transaction(self.store) as tx:
            loaded = alerts_mod.load(tx)
            facts = [a.facts() for a in loaded]
            groups: dict[str, _Group] = {}
            for alert, fa in zip(loaded, facts, strict=True):
                muted = self.mute_reason(fa, facts, now)
                if muted:
                    result.muted[f"{alert.incident.id}/{alert.role}"] = muted
                self._note_mute(tx, alert.incident.id, alert.role, muted, now)
                for route in match_routes(self.config.route, fa.labels):
                    chans = self.channels_for(route, alert.role, alert.team)
                    if not chans:
                        continue
                    key = group_key(route, chans, fa.labels)
                    g = groups.setdefault(key, _Group(route, chans, group_labels(route, fa.labels)))
                    g.members.append((alert, muted))
            for key, g in groups.items():
                self._flush_group(tx, key, g, now, result)

    @staticmethod
    def _note_mute(tx: Tx, incident_id: int, role: str, reason: str | None, now: int) -> None:
        """Record on the timeline when an alert becomes muted or is muted no longer."""
        row = tx.fetchone(
            "SELECT muted FROM respond_alerts WHERE incident_id = ? AND role = ?",
            (incident_id, role),
        )
        before = row[0] if row else None
        if before == reason:
            return
        tx.execute(
            "UPDATE respond_alerts SET muted = ? WHERE incident_id = ? AND role = ?",
            (reason, incident_id, role),
        )
        inc_mod.add_timeline(
            tx,
            incident_id,
            now,
            "muted" if reason else "unmuted",
            "flightlog",
            {"role": role, "reason": reason or before},
        )

    def _flush_group(self, tx: Tx, key: str, g: _Group, now: int, result: TickResult) -> None:
        notified = {
            (int(r[0]), r[1]): r[2]
            for r in tx.fetchall(
                "SELECT incident_id, role, notified_status FROM respond_group_alerts "
                "WHERE group_key = ?",
                (key,),
            )
        }
        visible: list[tuple[Incident, str, str]] = [
            (a.incident, a.role, a.team)
            for a, muted in g.members
            if not muted
            and (
                a.incident.status != "resolved"
                or notified.get((a.incident.id, a.role), "resolved") != "resolved"
            )
        ]
        if not visible:
            return
        row = tx.fetchone(
            "SELECT first_ns, last_sent_ns, last_hash, sent_count FROM respond_groups "
            "WHERE group_key = ?",
            (key,),
        )
        if row is None:
            tx.execute(
                "INSERT INTO respond_groups (group_key, route_id, channels, group_labels, "
                "first_ns, last_sent_ns, last_hash, sent_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    g.route.id,
                    _json.dumps(list(g.channels)),
                    _json.dumps(g.labels),
                    now,
                    None,
                    None,
                    0,
                ),
            )
            row = (now, None, None, 0)
        state = GroupState(int(row[0]), row[1], row[2])
        digest = content_hash([(i.id, role, i.status, i.run_count) for i, role, _ in visible])
        firing = any(i.status != "resolved" for i, _, _ in visible)
        if not flush_due(g.route, state, digest, firing, now):
            return
        sent = int(row[3]) + 1
        notice = Notice(
            kind="notify",
            receiver=f"{g.route.id}:{'+'.join(g.channels)}",
            group_key=key,
            group_labels=g.labels,
            alerts=[alerts_mod.view(self.config, i, role, team) for i, role, team in visible],
        )
        result.notifications += queue_notice(
            tx,
            self.config,
            notice,
            g.channels,
            key=f"n-{hashlib.sha256(key.encode()).hexdigest()[:12]}-{sent}",
            incident_ids=sorted({i.id for i, _, _ in visible}),
            now_ns=now,
        )
        tx.execute(
            "UPDATE respond_groups SET last_sent_ns = ?, last_hash = ?, sent_count = ? "
            "WHERE group_key = ?",
            (now, digest, sent, key),
        )
        for i, role, _ in visible:
            tx.execute(
                "INSERT INTO respond_group_alerts (group_key, incident_id, role, "
                "notified_status) VALUES (?, ?, ?, ?) ON CONFLICT (group_key, incident_id, "
                "role) DO UPDATE SET notified_status = excluded.notified_status",
                (key, i.id, role, i.status),
            )
            tx.execute(
                "UPDATE respond_alerts SET first_notified_ns = ? WHERE incident_id = ? "
                "AND role = ? AND first_notified_ns IS NULL",
                (now, i.id, role),
            )
