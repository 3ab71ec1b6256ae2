"""The built-in channel types that POST JSON (``flightlog.respond.channels``).

- ``webhook``: JSON in the shape of Alertmanager's webhook payload (``version`` "4",
  ``status``, ``receiver``, ``groupKey``, ``groupLabels``, ``commonLabels``,
  ``commonAnnotations``, ``externalURL``, ``alerts[]`` with ``status``, ``labels``,
  ``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``).
- ``slack``: an incoming-webhook message: Block Kit ``blocks`` with a ``text`` fallback.
- ``pagerduty``: Events API v2 (``routing_key``, ``event_action`` trigger / acknowledge /
  resolve, a ``dedup_key`` stable per incident, ``payload`` with summary, source, severity,
  component, group, class and ``custom_details``); one event per incident.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

from flightlog import _json
from flightlog._retry import parse_retry_after
from flightlog.respond.channels import (
    Channel,
    DeliveryResult,
    Message,
    Notice,
    headline,
    render_text,
    rfc3339,
)
from flightlog.respond.config import PAGERDUTY_URL, ChannelConfig, redact

USER_AGENT = "flightlog-respond/0.1"

_opener = urllib.request.build_opener()


def post_json(
    url: str, payload: dict[str, Any], key: str, headers: dict[str, str], timeout: float
) -> DeliveryResult:
    """POST ``payload`` with ``Idempotency-Key: key``; the outcome classified."""
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


class HTTPChannel(Channel):
    """A channel that POSTs its body as JSON to a secret ``url`` (plus ``headers``)."""

    secrets: tuple[str, ...] = ("url",)

    def check(self, name: str, settings: dict[str, Any], secrets: dict[str, str]) -> str | None:
        url = secrets.get("url", "")
        if not url.startswith(("http://", "https://")):
            return f"channel {name!r} url must start with http:// or https:// (got {redact(url)})"
        return None

    def target(self, channel: ChannelConfig, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Where to POST and what: the URL and the body with its secrets."""
        return channel.secrets["url"], body

    def send(self, channel: ChannelConfig, body: dict[str, Any], key: str) -> DeliveryResult:
        url, payload = self.target(channel, body)
        headers = {str(k): str(v) for k, v in (channel.settings.get("headers") or {}).items()}
        return post_json(url, payload, key, headers, channel.timeout_s)


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    out = dict(dicts[0])
    for d in dicts[1:]:
        out = {k: v for k, v in out.items() if d.get(k) == v}
    return out


class Webhook(HTTPChannel):
    name = "webhook"

    def body(self, channel: ChannelConfig, notice: Notice) -> dict[str, Any]:
        alerts: list[dict[str, Any]] = []
        for a in notice.alerts:
            alerts.append(
                {
                    "status": a.status,
                    "labels": dict(a.labels),
                    "annotations": dict(a.annotations),
                    "startsAt": rfc3339(a.starts_ns),
                    "endsAt": rfc3339(a.ends_ns),
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


class Slack(HTTPChannel):
    name = "slack"

    def body(self, channel: ChannelConfig, notice: Notice) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": headline(notice)[:150]}},
        ]
        if notice.note:
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn_escape(notice.note)}}
            )
        for a in notice.alerts[:20]:
            text = _mrkdwn_escape(a.text)[:2900]
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
            context = (
                f"incident #{a.incident_id} · {a.incident_status} · "
                f"team {a.labels.get('team')} · {a.labels.get('role')}"
            )
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": _mrkdwn_escape(context)}],
                }
            )
        return {"text": render_text(notice)[:3000], "blocks": blocks}


_PD_SEVERITY = {
    "critical": "critical",
    "error": "error",
    "warning": "warning",
    "info": "info",
    "page": "critical",
}


class PagerDuty(HTTPChannel):
    """One event per incident; acknowledged and resolved by the transitions themselves
    (``follows_transitions``), with the incident's ``dedup_key``."""

    name = "pagerduty"
    secrets = ("routing_key",)
    settings = frozenset({"url", "severity"})
    follows_transitions = True

    def check(self, name: str, settings: dict[str, Any], secrets: dict[str, str]) -> str | None:
        if not str(settings.get("url", PAGERDUTY_URL)).startswith("http"):
            return "url must be http(s)://..."
        return None

    def describe(self, channel: ChannelConfig) -> str:
        return f"pagerduty {redact(str(channel.settings.get('url', PAGERDUTY_URL)))}"

    def target(self, channel: ChannelConfig, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        url = str(channel.settings.get("url", PAGERDUTY_URL))
        return url, {"routing_key": channel.secrets["routing_key"], **body}

    def render(self, channel: ChannelConfig, notice: Notice) -> list[Message]:
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
                default = _PD_SEVERITY.get(a.severity, "error")
                body["payload"] = {
                    "summary": a.summary[:1024],
                    "source": a.labels.get("workflow", "flightlog"),
                    "severity": str(channel.settings.get("severity") or default),
                    "component": a.labels.get("step", ""),
                    "group": a.labels.get("team", ""),
                    "class": a.labels.get("error", ""),
                    "custom_details": {
                        **a.annotations,
                        **{f"label.{k}": v for k, v in a.labels.items()},
                    },
                }
                if a.annotations.get("report_url"):
                    link = {"href": a.annotations["report_url"], "text": "Flightlog report"}
                    body["links"] = [link]
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


WEBHOOK = Webhook()
SLACK = Slack()
PAGERDUTY = PagerDuty()
