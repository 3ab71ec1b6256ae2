"""Email over SMTP with STARTTLS and authentication, against aiosmtpd on loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flightlog.config import parse_config
from flightlog.respond.channels import Notice, render, send
from flightlog.respond.config import respond_config


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(random.getrandbits(64))
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_smtp(tmp_path: Path) -> Any:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    seen: dict[str, Any] = {"messages": [], "logins": []}

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            seen["messages"].append((session.ssl is not None, envelope.content))
            return "250 OK"

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = auth_data.login == b"flightlog" and auth_data.password == b"s3cret-pw"
        seen["logins"].append(auth_data.login)
        return AuthResult(success=ok, handled=False)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    yield port, cert, seen
    controller.stop()


def channel(port: int, cert: Path, password: str) -> Any:
    text = f"""
[teams.t]
channels = ["mail"]
[[owners]]
team = "t"
[channels.mail]
type = "email"
host = "127.0.0.1"
port = {port}
starttls = true
ca_file = "{cert}"
username = "flightlog"
from = "flightlog@example.test"
to = ["oncall@example.test"]
timeout = "5s"
"""
    cfg = respond_config(parse_config(text), environ={"FLIGHTLOG_CHANNEL_MAIL_PASSWORD": password})
    return cfg.channels["mail"]


def test_starttls_and_login(tls_smtp: Any) -> None:
    port, cert, seen = tls_smtp
    ch = channel(port, cert, "s3cret-pw")
    notice = Notice(kind="notify", receiver="t", group_key="g", group_labels={}, alerts=[])
    assert render(ch, notice) == []  # nothing to say, nothing sent
    result = send(ch, {"subject": "[FIRING] claims-triage", "text": "root cause ..."}, "k-1")
    assert result.outcome == "delivered", result
    ((tls, content),) = seen["messages"]
    assert tls and b"Subject: [FIRING] claims-triage" in content
    assert b"Message-ID: <k-1@flightlog>" in content

    # a wrong password is a permanent SMTP 5xx: failed with the reason, never the password
    bad = send(channel(port, cert, "wrong-pw"), {"subject": "x", "text": "y"}, "k-2")
    assert bad.outcome == "failed" and bad.code == 535, bad
    assert "wrong-pw" not in (bad.error or "")


def test_untrusted_certificate_is_retried_not_sent_in_clear(tls_smtp: Any, tmp_path: Path) -> None:
    port, _, seen = tls_smtp
    (tmp_path / "other").mkdir()
    other, _ = self_signed(tmp_path / "other")  # a CA that did not sign the server's certificate
    result = send(channel(port, other, "s3cret-pw"), {"subject": "x", "text": "y"}, "k-3")
    assert result.outcome == "retry" and "SSL" in (result.error or "")
    assert seen["messages"] == []
