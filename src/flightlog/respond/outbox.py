"""The persistent outbox: notifications are stored before they are sent.

A notification is written to ``respond_outbox`` in the same transaction as the state change
that caused it (a new incident, a group flush, an acknowledgement), so a crash cannot lose
it. ``deliver_due`` then sends what is due, per channel in the order queued (a message that
must be retried holds back the later messages of its channel, so a PagerDuty ``resolve``
never overtakes its ``trigger``).

Outcomes: ``delivered``; ``retry`` (timeouts, connection errors, HTTP 408/429/5xx, SMTP 4xx)
with exponential backoff and full jitter, honouring ``Retry-After``, until
``give_up_after`` (then ``failed``); ``failed`` at once on any other 4xx, with the reason.

Exactly-once is not possible across a network; this is the boundary, stated honestly:

1. Before sending, the row is claimed: marked ``sending`` (attempts + 1) and committed. A
   row left ``sending`` is claimed again only after a lease (the channel's timeout plus 5 s),
   so two processes working one outbox do not both send it.
2. The message is sent.
3. The outcome is committed (``delivered`` plus the ``alert.sent`` ledger record, or the
   next attempt time).

A crash before 1 or between 1 and 2 loses nothing and sends once after restart (after the
lease). A crash between 2 and 3 (the receiver has it; we did not record it) sends it again
after restart: delivery is at-least-once. Every message therefore carries its outbox id as
an idempotency key (HTTP ``Idempotency-Key`` header, email ``Message-ID``) and PagerDuty
events carry the incident's ``dedup_key``, which PagerDuty itself deduplicates; a receiver
that honours the key sees each notification once. Messages already ``delivered`` are never
sent again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from flightlog import _json, _retry
from flightlog.respond import channels as channels_mod
from flightlog.respond.channels import DeliveryResult, Message
from flightlog.respond.clock import Clock
from flightlog.respond.config import NS, ChannelConfig
from flightlog.respond.incidents import add_timeline, transaction
from flightlog.store.base import Store, Tx

COLUMNS = (
    "id, seq, created_ns, channel, channel_type, kind, action, incident_id, incident_ids, "
    "group_key, summary, body, status, attempts, next_attempt_ns, last_attempt_ns, "
    "delivered_ns, last_error, response_code"
)

Sender = Callable[[ChannelConfig, dict[str, Any], str], DeliveryResult]


@dataclass
class OutboxEntry:
    id: str
    seq: int
    created_ns: int
    channel: str
    channel_type: str
    kind: str
    action: str | None
    incident_id: int | None
    incident_ids: list[int]
    group_key: str | None
    summary: str
    body: dict[str, Any]
    status: str  # pending | sending | delivered | failed
    attempts: int
    next_attempt_ns: int
    last_attempt_ns: int | None
    delivered_ns: int | None
    last_error: str | None
    response_code: int | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> OutboxEntry:
        v = list(row)
        v[8] = _json.loads(v[8]) or []
        v[11] = _json.loads(v[11]) or {}
        return cls(*v)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def enqueue(
    tx: Tx,
    *,
    key: str,
    channel: ChannelConfig,
    kind: str,
    message: Message,
    incident_ids: list[int],
    group_key: str | None,
    now_ns: int,
) -> bool:
    """Queue one message (idempotent by ``key``); True when it was new."""
    if tx.fetchone("SELECT 1 FROM respond_outbox WHERE id = ?", (key,)):
        return False
    row = tx.fetchone("SELECT COALESCE(MAX(seq), 0) FROM respond_outbox")
    seq = int(row[0]) + 1 if row else 1
    tx.execute(
        f"INSERT INTO respond_outbox ({COLUMNS}) VALUES ({', '.join('?' * 19)}) "
        "ON CONFLICT (id) DO NOTHING",
        (
            key,
            seq,
            now_ns,
            channel.name,
            channel.type,
            kind,
            message.action,
            message.incident_id,
            _json.dumps(incident_ids),
            group_key,
            message.summary[:500],
            _json.dumps(message.body),
            "pending",
            0,
            now_ns,
            None,
            None,
            None,
            None,
        ),
    )
    for iid in incident_ids:
        add_timeline(
            tx,
            iid,
            now_ns,
            "notification.queued",
            "flightlog",
            {
                "outbox": key,
                "channel": channel.name,
                "kind": kind,
                **({"action": message.action} if message.action else {}),
            },
        )
    return True


def triggered_channels(tx: Tx, incident_id: int) -> list[str]:
    """The channels queued an ``action = "trigger"`` message for the incident."""
    rows = tx.fetchall(
        "SELECT DISTINCT channel FROM respond_outbox WHERE incident_id = ? "
        "AND action = 'trigger' ORDER BY channel",
        (incident_id,),
    )
    return [str(r[0]) for r in rows]


class Outbox:
    """Delivers queued notifications with retries (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        channels: dict[str, ChannelConfig],
        clock: Clock,
        *,
        sender: Sender | None = None,
        rng: random.Random | None = None,
        base_delay_s: float = 2.0,
        max_delay_s: float = 300.0,
        give_up_after_s: float = 24 * 3600.0,
        lease_margin_s: float = 5.0,
    ) -> None:
        self.store = store
        self.channels = channels
        self.clock = clock
        self.sender = sender or channels_mod.send
        self.rng = rng or random.Random()
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.give_up_after_s = give_up_after_s
        self.lease_margin_s = lease_margin_s

    def backoff_s(self, attempts: int, retry_after_s: float | None = None) -> float:
        """Exponential backoff with full jitter (``flightlog._retry``), never shorter than a
        receiver's ``Retry-After``."""
        return _retry.backoff_s(
            attempts,
            base_s=self.base_delay_s,
            cap_s=self.max_delay_s,
            retry_after_s=retry_after_s,
            rng=self.rng,
        )

    def deliver_due(self, limit: int = 500) -> dict[str, int]:
        """Send every due message (pending, or left ``sending`` by a crash). Returns counts."""
        now = self.clock.now_ns()
        with self.store.read() as tx:
            rows = tx.fetchall(
                f"SELECT {COLUMNS} FROM respond_outbox WHERE status IN ('pending', 'sending') "
                "ORDER BY seq LIMIT ?",
                (limit,),
            )
        counts = {"delivered": 0, "retry": 0, "failed": 0, "busy": 0}
        blocked: set[str] = set()
        for row in rows:
            entry = OutboxEntry.from_row(row)
            if entry.channel in blocked:
                continue
            if entry.status == "pending" and entry.next_attempt_ns > now:
                blocked.add(entry.channel)  # keep per-channel order
                continue
            outcome = self._attempt(entry)
            counts[outcome] += 1
            if outcome in ("retry", "busy"):
                blocked.add(entry.channel)
        return counts

    def _attempt(self, entry: OutboxEntry) -> str:
        channel = self.channels.get(entry.channel)
        now = self.clock.now_ns()
        if channel is None:
            self._finish(
                entry,
                DeliveryResult(
                    "failed", None, f"channel {entry.channel!r} is no longer configured"
                ),
                now,
            )
            return "failed"
        # A message left 'sending' is reclaimed only once the sender that claimed it must
        # have finished or died (its timeout plus a margin), so that two processes working
        # the same outbox (watch, the SDK hook, the server) do not both send it.
        lease_ns = int((channel.timeout_s + self.lease_margin_s) * NS)
        # Step 1: claim and record the attempt. One conditional UPDATE: it needs no lock (the
        # row is claimed by whichever process updates it first).
        with self.store.transaction() as tx:
            claimed = tx.fetchone(
                "UPDATE respond_outbox SET status = 'sending', attempts = attempts + 1, "
                "last_attempt_ns = ? WHERE id = ? AND ((status = 'pending' AND "
                "next_attempt_ns <= ?) OR (status = 'sending' AND last_attempt_ns <= ?)) "
                "RETURNING attempts",
                (now, entry.id, now, now - lease_ns),
            )
        if claimed is None:
            return "busy"
        entry.attempts = int(claimed[0])
        result = self.sender(channel, entry.body, entry.id)  # step 2
        now = self.clock.now_ns()
        if result.outcome == "retry" and (now - entry.created_ns >= self.give_up_after_s * NS):
            result = DeliveryResult(
                "failed", result.code, f"gave up after {entry.attempts} attempts: {result.error}"
            )
        self._finish(entry, result, now)  # step 3
        return result.outcome

    def _finish(self, entry: OutboxEntry, result: DeliveryResult, now: int) -> None:
        with transaction(self.store) as tx:
            if result.outcome == "delivered":
                tx.execute(
                    "UPDATE respond_outbox SET status = 'delivered', delivered_ns = ?, "
                    "response_code = ?, last_error = NULL WHERE id = ?",
                    (now, result.code, entry.id),
                )
                data = {
                    "id": entry.id,
                    "outbox": entry.id,
                    "channel": entry.channel,
                    "channel_type": entry.channel_type,
                    "kind": entry.kind,
                    "action": entry.action,
                    "incidents": entry.incident_ids,
                    "summary": entry.summary,
                    "attempts": entry.attempts,
                    "response_code": result.code,
                    "at_ns": now,
                }
                self.store.audit(tx, "alert.sent", data)
                for iid in entry.incident_ids:
                    add_timeline(
                        tx,
                        iid,
                        now,
                        "notification.delivered",
                        "flightlog",
                        {"outbox": entry.id, "channel": entry.channel, "attempts": entry.attempts},
                    )
            elif result.outcome == "retry":
                delay = self.backoff_s(entry.attempts, result.retry_after_s)
                tx.execute(
                    "UPDATE respond_outbox SET status = 'pending', next_attempt_ns = ?, "
                    "last_error = ?, response_code = ? WHERE id = ?",
                    (now + int(delay * NS), result.error, result.code, entry.id),
                )
            else:
                tx.execute(
                    "UPDATE respond_outbox SET status = 'failed', last_error = ?, "
                    "response_code = ? WHERE id = ?",
                    (result.error, result.code, entry.id),
                )
                for iid in entry.incident_ids:
                    add_timeline(
                        tx,
                        iid,
                        now,
                        "notification.failed",
                        "flightlog",
                        {"outbox": entry.id, "channel": entry.channel, "reason": result.error},
                    )


def list_outbox(store: Store, *, status: str | None = None, limit: int = 200) -> list[OutboxEntry]:
    """Outbox rows, newest first (``flightlog alerts``)."""
    where, params = ("", []) if not status else (" WHERE status = ?", [status])
    with store.read() as tx:
        rows = tx.fetchall(
            f"SELECT {COLUMNS} FROM respond_outbox{where} ORDER BY seq DESC LIMIT ?",
            [*params, limit],
        )
    return [OutboxEntry.from_row(r) for r in rows]
