"""Classes of leaks, attacked one by one: each secret below, written as traces write it, is
gone from what the scrubber keeps; scrubbing twice changes nothing; and what only looks like
a secret (ids, hashes, timestamps, prices, versions, cache keys) is kept as it was."""

from __future__ import annotations

import json

import orjson
import pytest

from flightlog.privacy import load

S = load({})

# (text, the secret in it that must go)
LEAKS = [
    # secret key names: short words as a word of their own
    ("pass=hunter2xyz", "hunter2xyz"),
    ("db_pass: hunter2xyz", "hunter2xyz"),
    ("PIN: 4821", "4821"),
    ("card pin=4821", "4821"),
    ("userPin=4821", "4821"),
    ("my passcode: 4821", "4821"),
    ("secret_key = 'abc123xyz'", "abc123xyz"),
    ("DJANGO_SECRET_KEY=abc123xyz", "abc123xyz"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    # Python reprs and single-quoted pseudo-JSON
    ("{'password': 'x7'}", "x7'"),
    ("{'api_key': 'opaque-value-1'}", "opaque-value-1"),
    ("{'credential': 'opaque-value-1', 'n': 1}", "opaque-value-1"),
    ("{'headers': {'Authorization': 'opaque-value-1'}}", "opaque-value-1"),
    ("{'pin': 4821}", "4821"),
    ("Config(api_key='opaque-value-1', name='x')", "opaque-value-1"),
    ("connect(host='db', password='x7')", "x7'"),
    ('export DB_PASS="x7"', 'x7"'),
    ("call failed: {'auth': ('user', 'opaque-value-1')}", "opaque-value-1"),
    # a name and a value in one object (headers, environment variables, OTLP key-values)
    ('[{"name": "Authorization", "value": "opaque-value-1"}]', "opaque-value-1"),
    ('{"env": [{"name": "API_TOKEN", "value": "opaque-value-1"}]}', "opaque-value-1"),
    ("[{'name': 'password', 'value': 'opaque-value-1'}]", "opaque-value-1"),
    ('{"key": "db.password", "value": {"stringValue": "opaque-value-1"}}', "opaque-value-1"),
    # phone numbers with a full-width plus, no-break spaces
    ("call ＋44 20 7946 0958 now", "7946 0958"),
    ("call +44\u00a020\u00a07946\u00a00958", "7946"),
    # credentials in URLs, query strings, headers in text
    ("postgresql://u:p4ssw0rd@h/db", "p4ssw0rd"),
    ("redis://:mypassword@localhost:6379/0", "mypassword"),
    ("https://x.com/a?auth=abc123def", "abc123def"),
    ("https://x.com/a?private_token=abc123def", "abc123def"),
    ("https://x.com/a?x_api_key=abc123def&q=1", "abc123def"),
    ("https%3A%2F%2Fx.com%2Fa%3Ftoken%3Dabc123def", "abc123def"),
    ("password%3Dhunter2xyz", "hunter2xyz"),
    ("curl -H 'Authorization: Bearer abcdef123456' https://x", "abcdef123456"),
    ("GET /x Authorization=Bearer%20abcdef123456", "abcdef123456"),
    # provider keys
    (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBFabc\n-----END PGP PRIVATE KEY BLOCK-----",
        "lQOYBFabc",
    ),  # fmt: skip
    ("glpat-abcdefghijklmnopqrst", "abcdefghijklmnopqrst"),
    ("HF_TOKEN is hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "abcdefghijklmnopqrstuvwxyzABCDEFGH"),
    ("npm_abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwxyz0123456789"),
    # JWTs glued to what precedes them
    ("id_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "dozjgNryP4J3"),
    # e-mail addresses as a real system still reads them
    ("write to jöhn@example.com", "jöhn"),
    ("write to john.doe@exämple.com", "john.doe"),
    ("write to john.doe＠example.com", "john.doe"),
    ("mailto:john.doe%40example.com", "john.doe"),
    ("john.doe [at] example [dot] com", "john.doe"),
    ("john.doe(at)example.com", "john.doe"),
    # IBANs, cards, SSNs as people type them
    ("gb82 west 1234 5698 7654 32", "5698 7654"),
    ("4111.1111.1111.1111", "1111.1111"),
    ("4111/1111/1111/1111", "1111/1111"),
    ("ssn 123 45 6789", "45 6789"),
]


@pytest.mark.parametrize(("text", "secret"), LEAKS)
def test_leak_is_scrubbed(text: str, secret: str) -> None:
    out = S.text(text)
    assert secret not in out, out
    assert "[redacted" in out
    assert S.text(out) == out  # scrubbing twice changes nothing


@pytest.mark.parametrize(("text", "secret"), LEAKS)
def test_leak_is_scrubbed_inside_json_and_attributes(text: str, secret: str) -> None:
    """The same text as a JSON string (escaped), an attribute value and a payload."""
    as_json = json.dumps({"message": text})
    assert secret not in S.text(as_json).replace("\\u00a0", "\u00a0")
    assert secret not in json.dumps(S.mapping({"message": text}), ensure_ascii=False)
    assert secret not in json.dumps(S.value([{"message": text}]), ensure_ascii=False)


SECRET_KEYS = [
    "pass", "db_pass", "dbPass", "user.pass", "pin", "card.pin", "userPin", "pin_code",
    "PIN", "passcode", "cvv", "auth", "x-auth", "secret_key", "aws_secret_access_key",
    "encryption_key", "masterKey", "Ocp-Apim-Subscription-Key", "API Key", "sessionToken",
]  # fmt: skip
PLAIN_KEYS = [
    "key", "cache_key", "cacheKey", "idempotency_key", "partition_key", "s3.key", "passage",
    "spin", "pinned", "pipeline", "author", "compass", "passed", "keyword", "max_tokens",
    "llm.token_count.prompt", "bypass_cache", "mapping",
]  # fmt: skip


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_key_names(key: str) -> None:
    assert S.mapping({key: "opaque-val-123"}) == {key: "[redacted: credential]"}
    assert "opaque" not in S.text(json.dumps({key: "opaque-val-123"}))
    assert "opaque" not in S.text(repr({key: "opaque-val-123"}))


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_plain_key_names_keep_their_values(key: str) -> None:
    """``key`` alone, or after a word that says what it indexes, is an identifier."""
    value = {key: "user:42:profile"}
    assert S.mapping(value) is value
    assert S.text(json.dumps(value)) == json.dumps(value)
    assert S.text(repr(value)) == repr(value)


def test_a_boolean_under_a_secret_key_is_kept() -> None:
    """One bit is no credential: an evaluation's ``{"pass": true}`` stays."""
    value = {"pass": True, "password": False, "pin": None}
    assert S.mapping(value) is value
    assert orjson.loads(S.text('{"pass": true, "score": 1}')) == {"pass": True, "score": 1}


def test_name_value_pairs_only_when_the_name_names_a_secret() -> None:
    headers = [{"name": "Accept", "value": "json"}, {"name": "X-Api-Key", "value": "opaque1"}]
    assert S.value(headers) == [
        {"name": "Accept", "value": "json"},
        {"name": "X-Api-Key", "value": "[redacted: credential]"},
    ]
    text = json.dumps({"headers": headers})
    out = S.text(text)
    assert orjson.loads(out) == {"headers": S.value(headers)}
    assert S.mapping({"name": "user", "value": "ada"}) == {"name": "user", "value": "ada"}


# What only looks like a secret: kept as it is, in text, as attributes and as JSON.
HARMLESS = [
    "The quick brown fox jumps over the lazy dog.",
    "request 3f2a9c0d-1e2b-4a5f-9c3d-2e1f0a9b8c7d finished",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "git 4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
    "at 2026-12-01T00:56:19.123456Z (1764550579123456789 ns)",
    "total $1,249.99 (EUR 1.249,99), 3 x 19.99",
    "flightlog 0.14.2, python 3.12.7, openssl 3.0.13",
    "max_tokens=512 temperature=0.2 top_p=0.95",
    "the password reset link was sent",
    "key=user:42:profile ttl=300",
    "cache_key='session:42' hit=True",
    "if passed == 'yes': continue",
    "compass: north, spin: 3",
    "ip 192.168.10.254 port 5432",
    "version 2024.11.1234.5678",
    "call the office at extension 4821",
    "Authorization header missing",
    "author: Ada Lovelace",
    "meet me [at] noon",
]


@pytest.mark.parametrize("text", HARMLESS)
def test_harmless_text_is_kept(text: str) -> None:
    assert S.text(text) == text
    value = {"message": text, "text": [text]}
    assert S.mapping(value) is value
    assert S.text(json.dumps(value)) == json.dumps(value)


def test_every_text_field_of_a_batch_is_scrubbed() -> None:
    """Names and labels an OTLP sender sets freely (service, version, model, provider, agent,
    owner, kind, the exception's type, an edge's detail) are scrubbed where a rule matches,
    and kept as they are otherwise."""
    from flightlog.model import Batch, Edge, ErrorInfo, Run, Step

    secret = "a@example.com"
    run = Run("r1", "wf", 1, service=secret, version=secret, owner=secret)
    step = Step("r1", "s1", "call", secret, 1, 1, agent=secret, owner=secret, model=secret,
                provider=secret, error=ErrorInfo(secret, "boom"))  # fmt: skip
    plain = Step("r1", "s2", "call", "llm", 2, 2, agent="planner", model="gpt-4o")
    edge = Edge("r1", "s1", "s2", detail=secret)
    batch = load({}).batch(Batch(runs=[run], steps=[step, plain], edges=[edge]))
    assert secret not in repr(batch)
    assert batch.runs[0].service == "[redacted: email]"
    assert batch.steps[0].error is not None and batch.steps[0].error.type == "[redacted: email]"
    assert (batch.steps[1].kind, batch.steps[1].agent, batch.steps[1].model) == (
        "llm",
        "planner",
        "gpt-4o",
    )
