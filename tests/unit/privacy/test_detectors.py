"""Each built-in detector finds what it is for and leaves look-alikes alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightlog.privacy import PrivacyConfig, Scrubber
from flightlog.privacy.detectors import card_ok, iban_ok, luhn_ok

S = Scrubber(PrivacyConfig())

# (text with a secret, the secret, the rule that must name it)
FOUND = [
    (
        "key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "openai_key",
    ),
    (
        "sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z00",
        "sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z00",
        "openai_key",
    ),
    (
        "x sk-ant-api03-Zq8_Xw7-Vt6Us5Rr4Qp3Oo2Nn1Mm0LlKkJj",
        "sk-ant-api03-Zq8_Xw7-Vt6Us5Rr4Qp3Oo2Nn1Mm0LlKkJj",
        "anthropic_key",
    ),
    ("aws AKIAIOSFODNN7EXAMPLE.", "AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
    ("ghp_" + "a1B2" * 9, "ghp_" + "a1B2" * 9, "github_token"),
    (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "github_pat_11ABCDEFG0123456789",
        "github_token",
    ),
    (
        "AIzaSyA-1234567890abcdefghijklmnopqrstu",
        "AIzaSyA-1234567890abcdefghijklmnopqrstu",
        "google_api_key",
    ),
    ("xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012-abcdefABCDEF", "slack_token"),
    ("https://hooks.slack.com/services/T000/B000/XXXXYYYYZZZZ", "XXXXYYYYZZZZ", "slack_token"),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
    (
        "tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "jwt",
    ),
    ("Authorization: Bearer abc123.def456-ghi", "abc123.def456-ghi", "authorization"),
    ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", "authorization"),
    ("postgres://app:s3cr3tPW@db.internal:5432/x", "s3cr3tPW", "url_credentials"),
    ("GET https://api.x.com/v1?q=1&api_key=ZX81kq", "ZX81kq", "url_secret"),
    ("https://x.com/cb?code=abc&access_token=T0K3N#f", "T0K3N", "url_secret"),
    ("password=hunter22 next", "hunter22", "secret_assignment"),
    ("client_secret: 'cs-9981'", "cs-9981", "secret_assignment"),
    # in JSON text, a secret key is a key: its value goes whatever it is (the key rule)
    ('{"client_secret": "cs-9981"}', "cs-9981", "credential"),
    ("write to jane.doe+x@mail.example.co.uk today", "jane.doe+x@mail.example.co.uk", "email"),
    ("call +44 20 7946 0958", "7946 0958", "phone"),
    ("call (555) 123-4567 now", "123-4567", "phone"),
    ("call 555-123-4567", "555-123-4567", "phone"),
    ("card 4111 1111 1111 1111 ok", "4111 1111 1111 1111", "card_number"),
    ("amex 3782-822463-10005", "822463", "card_number"),
    ("pay to GB82 WEST 1234 5698 7654 32", "WEST 1234", "iban"),
    ("iban DE89370400440532013000.", "DE89370400440532013000", "iban"),
    ("ssn 078-05-1120", "078-05-1120", "us_ssn"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
        "MIIEow",
        "private_key",
    ),
]


@pytest.mark.parametrize(("text", "secret", "rule"), FOUND)
def test_each_detector_finds_its_secret(text: str, secret: str, rule: str) -> None:
    out = S.text(text)
    assert secret not in out
    assert f"[redacted: {rule}]" in out


KEPT = [
    "run 4f3a2b1c9d8e7f6011223344 at 1700000000000000000 ns",  # ids and nanosecond times
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "version 1.2.3 on 2024-01-15 at 10.0.0.1:8080, 3 of 7 steps",
    "max_tokens=512 temperature=0.2 top_p=1",
    "the task-list has 12 items; see step k of N",
    "order 1234567890123456 (not a card: fails Luhn)",
    "DE00123456789012345678 is not a valid IBAN",
    "Bearer",  # a scheme with no credential
    "https://example.com/docs?page=2&sort=asc",
]


@pytest.mark.parametrize("text", KEPT)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert S.text(text) == text


def test_luhn_and_iban_checks() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert card_ok("4111111111111111") and not card_ok("4111111111111112")
    assert not card_ok("1700000000000000000")  # Luhn-valid or not, no network starts with 1
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")
    assert not iban_ok("GB82WEST1234569876543")  # the UK length is 22


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_text_without_secrets_round_trips_and_scrubbing_is_idempotent(text: str) -> None:
    once = S.text(text)
    assert isinstance(once, str)
    assert S.text(once) == once
