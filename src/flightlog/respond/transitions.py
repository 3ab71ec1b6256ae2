"""Transitions: an incident acknowledged or resolved, and who is told so at once.

``transition`` moves an incident by hand (``flightlog incident ack|resolve``, the API, an SLO
that stops burning) and ``follow_up`` queues, in the same transaction, an ``acknowledge`` or
``resolve`` notice for every channel whose type follows transitions
(``ChannelType.follows_transitions``: PagerDuty) and that was sent a ``trigger`` for the
incident; the webhook, Slack and email receivers hear of it when its group is next
flushed (``notify``). Auto-resolution (``recording``) follows up the same way.
"""

from __future__ import annotations

from flightlog.respond import alerts as alerts_mod
from flightlog.respond import incidents as inc_mod
from flightlog.respond.channels import Notice, channel_type
from flightlog.respond.config import RespondConfig
from flightlog.respond.incidents import Incident
from flightlog.respond.notify import queue_notice
from flightlog.respond.outbox import triggered_channels
from flightlog.store.base import Store, Tx


def follow_up(tx: Tx, config: RespondConfig, incident: Incident, action: str, now: int) -> None:
    """Queue ``action`` (``acknowledge``/``resolve``) for ``incident`` on every channel that
    follows transitions and was sent its ``trigger`` (same dedup key: one incident there)."""
    for name in triggered_channels(tx, incident.id):
        channel = config.channels.get(name)
        if channel is None or not channel_type(channel.type).follows_transitions:
            continue
        notice = Notice(
            kind=action,
            receiver=name,
            group_key=f"pd:{incident.id}",
            group_labels={"incident": str(incident.id)},
            alerts=[alerts_mod.view(config, incident, "root_cause", incident.root_cause_team)],
        )
        queue_notice(
            tx,
            config,
            notice,
            [name],
            key=f"pd-{incident.id}-{action}",
            incident_ids=[incident.id],
            now_ns=now,
            suffixed=False,
        )


def transition(
    store: Store,
    config: RespondConfig,
    incident_id: int,
    to: str,
    *,
    actor: str,
    now: int,
    note: str | None = None,
) -> Incident:
    """Acknowledge or resolve an incident and queue the follow-ups, in one transaction."""
    with inc_mod.transaction(store) as tx:
        incident = inc_mod.transition(
            store, tx, incident_id, to, actor=actor, now_ns=now, note=note
        )
        follow_up(tx, config, incident, "acknowledge" if to == "acknowledged" else "resolve", now)
    return incident
