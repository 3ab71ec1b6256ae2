"""The built-in ``email`` channel type: a plain-text message over SMTP, STARTTLS optional
(``flightlog.respond.channels``)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from flightlog.respond.channels import (
    Channel,
    DeliveryResult,
    Notice,
    clean,
    headline,
    render_text,
)
from flightlog.respond.config import ChannelConfig


class Email(Channel):
    name = "email"
    secrets = ("password",)
    settings = frozenset({"host", "port", "starttls", "username", "from", "to", "ca_file"})

    def describe(self, channel: ChannelConfig) -> str:
        s = channel.settings
        return f"smtp://{s.get('host')}:{s.get('port')} to {', '.join(s.get('to', []))}"

    def body(self, channel: ChannelConfig, notice: Notice) -> dict[str, Any]:
        return {"subject": headline(notice), "text": render_text(notice)}

    def send(self, channel: ChannelConfig, body: dict[str, Any], key: str) -> DeliveryResult:
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
                clean(f"recipients refused: {exc.recipients}", channel),
            )
        except smtplib.SMTPResponseException as exc:
            outcome = "retry" if 400 <= exc.smtp_code < 500 else "failed"
            text = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            return DeliveryResult(
                outcome, exc.smtp_code, clean(f"SMTP {exc.smtp_code} {text}", channel)
            )
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            error = clean(f"SMTP {type(exc).__name__}: {exc}", channel)
            return DeliveryResult("retry", None, error)


EMAIL = Email()
