"""Channels: how a notification is shaped for each receiver, and how it is sent.

- ``webhook``: JSON in the shape of Alertmanager's webhook payload (``version`` "4",
  ``status``, ``receiver``, ``groupKey``, ``groupLabels``, ``commonLabels``,
  ``commonAnnotations``, ``externalURL``, ``alerts[]`` with ``status``, ``labels``,
  ``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``).
- ``slack``: an incoming-webhook message: Block Kit ``blocks`` with a ``text`` fallback.
- ``pagerduty``: Events API v2 (``routing_key``, ``event_action`` trigger / acknowledge /
  resolve, a ``dedup_key`` stable per incident, ``payload`` with summary, source, severity,
  component, group, class and ``custom_details``); one event per incident.
- ``email``: a plain-text message over SMTP, STARTTLS optional.

Rendering happens when a notification is queued and the result (without secrets) is what
the outbox stores; secrets (webhook URLs, routing keys, passwords) are added only when
sending. ``send`` classifies the outcome: ``delivered``; ``retry`` (timeouts, connection
errors, HTTP 408/429/5xx, SMTP 4xx); ``failed`` (any other 4xx, SMTP 5xx), with the reason.
Each HTTP request carries ``Idempotency-Key`` (the outbox id) and each email that id in its
``Message-ID``, so a receiver can drop the duplicate a crash between sending and recording
can cause.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from flightlog import _json
from flightlog._retry import parse_retry_after
from flightlog.respond.config import PAGERDUTY_URL, ChannelConfig, redact

USER_AGENT = "flightlog-respond/0.1"


@dataclass
class AlertView:
    """One alert as told to a receiver."""

    incident_id: int
    role: str
    status: str  # firing | resolved
    incident_status: str  # triggered | acknowledged | resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_ns: int
    ends_ns: int | None
    fingerprint: str
    dedup_key: str
    severity: str
    summary: str
    text: str


@dataclass
class Notice:
    """A notification to send: a group of alerts (or one, for escalations and PagerDuty
    acknowledge/resolve) with its kind: ``notify``, ``escalation``, ``acknowledge``,
    ``resolve``."""

    kind: str
    receiver: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[AlertView]
    external_url: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"


@dataclass(frozen=True)
class Message:
    """One rendered message for the outbox: ``suffix`` makes its id unique within the
    notification, ``incident_id``/``action`` are set for per-incident messages."""

    suffix: str
    body: dict[str, Any]
    summary: str
    incident_id: int | None = None
    action: str | None = None


@dataclass(frozen=True)
class DeliveryResult:
    outcome: str  # delivered | retry | failed
    code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None


def _rfc3339(ns: int | None) -> str:
    if ns is None:
        return "0001-01-01T00:00:00Z"
    t = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    out = dict(dicts[0])
    for d in dicts[1:]:
        out = {k: v for k, v in out.items() if d.get(k) == v}
    return out


# -- rendering ---------------------------------------------------------------------------------
def render(channel: ChannelConfig, notice: Notice) -> list[Message]:
    """The messages ``notice`` becomes on ``channel`` (none when there is nothing to say)."""
    if channel.type == "pagerduty":
        return _render_pagerduty(channel, notice)
    if not notice.alerts:
        return []
    head = _headline(notice)
    if channel.type == "webhook":
        return [Message("", _render_webhook(notice), head)]
    if channel.type == "slack":
        return [Message("", _render_slack(notice), head)]
    if channel.type == "email":
        return [Message("", {"subject": head, "text": _render_text(notice)}, head)]
    raise ValueError(f"unknown channel type {channel.type!r}")


def _headline(notice: Notice) -> str:
    first = notice.alerts[0]
    tag = {"escalation": "ESCALATED", "acknowledge": "ACKNOWLEDGED"}.get(
        notice.kind, notice.status.upper()
    )
    more = f" (+{len(notice.alerts) - 1} more)" if len(notice.alerts) > 1 else ""
    return f"[{tag}] {first.summary}{more}"


def _render_text(notice: Notice) -> str:
    parts = []
    if notice.note:
        parts.append(notice.note)
    for a in notice.alerts:
        state = a.incident_status if a.status == "firing" else "resolved"
        parts.append(f"{a.text}\nIncident #{a.incident_id} is {state}.")
    return "\n\n".join(parts) + "\n"


def _render_webhook(notice: Notice) -> dict[str, Any]:
    alerts: list[dict[str, Any]] = []
    for a in notice.alerts:
        alerts.append(
            {
                "status": a.status,
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "startsAt": _rfc3339(a.starts_ns),
                "endsAt": _rfc3339(a.ends_ns),
                "generatorURL": a.annotations.get("report_url", ""),
                "fingerprint": a.fingerprint,
            }
        )
    return {
        "version": "4",
        "status": notice.status,
        "receiver": notice.receiver,
        "groupKey": notice.group_key,
        "truncatedAlerts": 0,
        "groupLabels": dict(notice.group_labels),
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": notice.external_url,
        "alerts": alerts,
        # Not in Alertmanager's payload: what this notification is (notify/escalation/...).
        "flightlog": {"kind": notice.kind, **({"note": notice.note} if notice.note else {})},
    }


def _mrkdwn_escape(text: str) -> str:
    """Captured content is untrusted: neutralise Slack's control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render_slack(notice: Notice) -> dict[str, Any]:
    head = _headline(notice)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
    ]
    if notice.note:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn_escape(notice.note)}}
        )
    for a in notice.alerts[:20]:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn_escape(a.text)[:2900]}}
        )
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": _mrkdwn_escape(
                            f"incident #{a.incident_id} · {a.incident_status} · "
                            f"team {a.labels.get('team')}"
                            f" · {a.labels.get('role')}"
                        ),
                    }
                ],
            }
        )
    return {"text": _render_text(notice)[:3000], "blocks": blocks}


_PD_SEVERITY = {
    "critical": "critical",
    "error": "error",
    "warning": "warning",
    "info": "info",
    "page": "critical",
}


def _render_pagerduty(channel: ChannelConfig, notice: Notice) -> list[Message]:
    out = []
    for a in notice.alerts:
        if notice.kind in ("acknowledge", "resolve"):
            action = notice.kind
        elif a.status == "firing" and a.incident_status == "triggered":
            action = "trigger"
        else:
            continue  # acknowledged/resolved states are sent by the transitions themselves
        body: dict[str, Any] = {"event_action": action, "dedup_key": a.dedup_key}
        if action == "trigger":
            sev = str(channel.settings.get("severity") or _PD_SEVERITY.get(a.severity, "error"))
            body["payload"] = {
                "summary": a.summary[:1024],
                "source": a.labels.get("workflow", "flightlog"),
                "severity": sev,
                "component": a.labels.get("step", ""),
                "group": a.labels.get("team", ""),
                "class": a.labels.get("error", ""),
                "custom_details": {
                    **a.annotations,
                    **{f"label.{k}": v for k, v in a.labels.items()},
                },
            }
            if a.annotations.get("report_url"):
                body["links"] = [{"href": a.annotations["report_url"], "text": "Flightlog report"}]
            body["client"] = "Flightlog"
        out.append(
            Message(
                f"pd-{a.incident_id}",
                body,
                f"{action} {a.summary}",
                incident_id=a.incident_id,
                action=action,
            )
        )
    return out


# -- sending -----------------------------------------------------------------------------------
_opener = urllib.request.build_opener()


def send(channel: ChannelConfig, body: dict[str, Any], key: str) -> DeliveryResult:
    """Deliver one rendered message. Never raises for delivery problems."""
    try:
        if channel.type == "email":
            return _send_email(channel, body, key)
        if channel.type == "pagerduty":
            url = str(channel.settings.get("url", PAGERDUTY_URL))
            payload = {"routing_key": channel.secrets["routing_key"], **body}
        else:
            url = channel.secrets["url"]
            payload = body
        headers = {str(k): str(v) for k, v in (channel.settings.get("headers") or {}).items()}
        return _post_json(url, payload, key, headers, channel.timeout_s)
    except Exception as exc:  # a bug in rendering/sending must not lose the notification
        return DeliveryResult("retry", None, _clean(f"{type(exc).__name__}: {exc}", channel))


def _clean(text: str, channel: ChannelConfig) -> str:
    """Remove secrets from an error text."""
    for secret in channel.secrets.values():
        if secret and secret in text:
            text = text.replace(secret, redact(secret) if "://" in secret else "***")
    return text[:500]


def _post_json(
    url: str, payload: dict[str, Any], key: str, headers: dict[str, str], timeout: float
) -> DeliveryResult:
    req = urllib.request.Request(
        url,
        data=_json.dumpb(payload),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": key,
            **headers,
        },
    )
    try:
        with _opener.open(req, timeout=timeout) as resp:
            resp.read(4096)
            return DeliveryResult("delivered", resp.status)
    except urllib.error.HTTPError as exc:
        code = exc.code
        try:
            detail = exc.read(300).decode("utf-8", "replace").strip()
        except Exception:
            detail = ""
        reason = f"HTTP {code} {exc.reason}" + (f": {detail}" if detail else "")
        if code in (408, 429) or code >= 500:
            retry_after = parse_retry_after(exc.headers.get("Retry-After"))
            return DeliveryResult("retry", code, reason, retry_after)
        return DeliveryResult("failed", code, reason)
    except TimeoutError:
        return DeliveryResult("retry", None, f"timed out after {timeout:g}s")
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            return DeliveryResult("retry", None, f"timed out after {timeout:g}s")
        return DeliveryResult("retry", None, f"connection failed: {exc.reason}")
    except (ConnectionError, OSError) as exc:
        return DeliveryResult("retry", None, f"connection failed: {exc}")


def _send_email(channel: ChannelConfig, body: dict[str, Any], key: str) -> DeliveryResult:
    s = channel.settings
    msg = EmailMessage()
    msg["Subject"] = str(body.get("subject", "Flightlog alert"))[:250]
    msg["From"] = str(s["from"])
    msg["To"] = ", ".join(s["to"])
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{key}@flightlog>"
    msg["X-Flightlog-Idempotency-Key"] = key
    msg.set_content(str(body.get("text", "")))
    host, port = str(s["host"]), int(s.get("port", 25))
    try:
        with smtplib.SMTP(host, port, timeout=channel.timeout_s) as smtp:
            smtp.ehlo()
            if s.get("starttls"):
                ctx = ssl.create_default_context(cafile=s.get("ca_file") or None)
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if s.get("username"):
                smtp.login(str(s["username"]), channel.secrets.get("password", ""))
            smtp.send_message(msg)
        return DeliveryResult("delivered", 250)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [c for c, _ in exc.recipients.values()]
        transient = all(400 <= c < 500 for c in codes)
        return DeliveryResult(
            "retry" if transient else "failed",
            codes[0] if codes else None,
            _clean(f"recipients refused: {exc.recipients}", channel),
        )
    except smtplib.SMTPResponseException as exc:
        outcome = "retry" if 400 <= exc.smtp_code < 500 else "failed"
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return DeliveryResult(
            outcome, exc.smtp_code, _clean(f"SMTP {exc.smtp_code} {text}", channel)
        )
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        return DeliveryResult("retry", None, _clean(f"SMTP {type(exc).__name__}: {exc}", channel))


def alert_to_dict(a: AlertView) -> dict[str, Any]:
    return asdict(a)
