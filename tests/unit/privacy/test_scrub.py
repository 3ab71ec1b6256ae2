"""Scrubbing whole batches: payloads re-addressed, references moved, every text field covered;
settings from flightlog.toml with line-numbered errors; mask, hash and drop."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightlog.config import parse_config
from flightlog.errors import ConfigurationError
from flightlog.model import Batch, ErrorInfo, Finding, Run, Step
from flightlog.payload import make_payload
from flightlog.privacy import PrivacyConfig, Scrubber

KEY = "sk-proj-Zq8Xw7Vt6Us5Rr4Qp3Oo2Nn1Mm0"
MAIL = "alice@example.com"


def scrubber(toml: str = "", env: dict[str, str] | None = None) -> Scrubber:
    cfg = parse_config(toml, Path("flightlog.toml"))
    return Scrubber(PrivacyConfig.from_env(env or {}, cfg))


def batch_with_secrets() -> Batch:
    inp = make_payload(
        orjson.dumps({"prompt": f"use {KEY}", "password": "pw"}, option=orjson.OPT_SORT_KEYS)
    )
    out = make_payload(orjson.dumps(f"mail {MAIL}"))
    clean = make_payload(orjson.dumps({"answer": 42}))
    err = ErrorInfo("ValueError", f"no user {MAIL}", f'Traceback\n  key="{KEY}"\n')
    run = Run(
        "a" * 32,
        "wf",
        1,
        status="failed",
        reason=f"rejected {MAIL}",
        error=err,
        input_hash=inp.hash,
        attributes={"authorization": "whatever", "n": 3},
    )
    step = Step(
        "a" * 32,
        "b" * 16,
        "call",
        "tool",
        1,
        1,
        input_hash=inp.hash,
        output_hash=out.hash,
        error=ErrorInfo("E", f"{KEY}"),
        attributes={"url.full": "https://x.io/p?api_key=K9", "gen_ai.usage.input_tokens": 7},
    )
    step2 = Step("a" * 32, "c" * 16, "ok", "tool", 2, 2, input_hash=clean.hash)
    finding = Finding(
        "f1",
        "a" * 32,
        "check",
        "error",
        f"customer {MAIL}",
        evidence={"cookie": "sid=1", "note": "card 4111111111111111"},
    )
    return Batch(runs=[run], steps=[step, step2], payloads=[inp, out, clean], findings=[finding])


def test_every_field_is_scrubbed_and_payloads_are_readdressed() -> None:
    b = batch_with_secrets()
    clean_hash = b.payloads[2].hash
    scrubber().batch(b)
    dumped = repr(b).encode() + b"".join(p.data for p in b.payloads)
    for secret in (KEY, MAIL, b"4111111111111111", "https://x.io/p?api_key=K9", "sid=1"):
        assert (secret if isinstance(secret, bytes) else secret.encode()) not in dumped
    by_hash = {p.hash: p for p in b.payloads}
    for p in b.payloads:  # content addressing holds for the scrubbed bytes
        assert p.hash == hashlib.sha256(p.data).hexdigest()
    run, step = b.runs[0], b.steps[0]
    assert orjson.loads(by_hash[run.input_hash].data) == {
        "password": "[redacted: credential]",
        "prompt": "use [redacted: openai_key]",
    }
    assert step.input_hash == run.input_hash
    assert orjson.loads(by_hash[step.output_hash].data) == "mail [redacted: email]"
    assert b.steps[1].input_hash == clean_hash  # untouched payloads keep their address
    assert run.attributes == {"authorization": "[redacted: credential]", "n": 3}
    assert step.attributes["gen_ai.usage.input_tokens"] == 7
    assert run.reason == "rejected [redacted: email]"
    assert run.error is not None and "[redacted: openai_key]" in (run.error.traceback or "")
    assert b.findings[0].message == "customer [redacted: email]"
    assert b.findings[0].evidence["note"] == "card [redacted: card_number]"


def test_a_truncated_value_loses_its_unscrubbed_hash() -> None:
    big = orjson.dumps({"text": f"{MAIL} " + "x" * 5000})
    p = make_payload(big, cap=1024)
    b = Batch(payloads=[p], steps=[Step("a" * 32, "b" * 16, "s", "tool", 1, 1, input_hash=p.hash)])
    scrubber().batch(b)
    marker = orjson.loads(b.payloads[0].data)
    assert marker["$truncated"] is True and "sha256" not in marker
    assert MAIL not in marker["preview"] and b.payloads[0].size == len(big)
    assert b.steps[0].input_hash == b.payloads[0].hash


def test_hash_keeps_equal_values_linkable_under_a_secret_salt(tmp_path: Path) -> None:
    salt = tmp_path / "salt"
    toml = (
        f'[privacy]\nsalt_file = "{salt}"\n[privacy.actions]\nemail = "hash"\ncredential = "hash"\n'
    )
    s = scrubber(toml)
    one, two, other = s.text(f"a {MAIL}"), s.text(f"b {MAIL}"), s.text("c bob@example.com")
    assert one.split("#")[1] == two.split("#")[1] != other.split("#")[1]
    assert one.startswith("a [redacted: email #")
    assert stat.S_IMODE(salt.stat().st_mode) == 0o600
    # Scrubbing twice (the SDK, then the server) changes nothing more.
    hashed = s.mapping({"authorization": "x", "note": f"to {MAIL}"})
    assert s.mapping(hashed) is hashed
    # Another salt, another digest: nobody without the salt can confirm a guess.
    s2 = scrubber(toml, {"FLIGHTLOG_PRIVACY_SALT": "another salt of enough length"})
    assert s2.text(f"a {MAIL}") != one


def test_drop_removes_the_value_that_holds_the_secret() -> None:
    s = scrubber('[privacy]\naction = "drop"\n')
    assert s.mapping({"password": "x", "k": 1, "mail": MAIL}) == {"k": 1}
    assert s.free_text(f"to {MAIL}") == "[redacted: dropped]"
    assert s.value([MAIL, "ok"]) == ["[redacted: dropped]", "ok"]


def test_own_patterns_keys_and_disabled_rules() -> None:
    toml = """
[privacy]
disable = ["phone"]
keys = ["x-customer-*"]

[[privacy.patterns]]
name = "customer_id"
regex = 'CUST-[0-9]{6}'
"""
    s = scrubber(toml)
    assert s.text("CUST-123456 at 555-123-4567") == "[redacted: customer_id] at 555-123-4567"
    assert s.mapping({"x-customer-ref": "A1"}) == {"x-customer-ref": "[redacted: credential]"}


def test_turned_off_by_environment() -> None:
    b = batch_with_secrets()
    scrubber(env={"FLIGHTLOG_PRIVACY": "off"}).batch(b)
    assert b.runs[0].reason == f"rejected {MAIL}"


@pytest.mark.parametrize(
    ("toml", "line", "words"),
    [
        ('[privacy]\naction = "blur"\n', 2, "unknown privacy action 'blur'"),
        ("[privacy]\n\ndisable = ['nope']\n", 3, "no built-in detector 'nope'"),
        ("[privacy]\ncolour = 1\n", 2, "unknown setting 'colour' in [privacy]"),
        ('[privacy.actions]\nemail = "hash"\nfoo = "mask"\n', 3, "no rule named 'foo'"),
        ("[[privacy.patterns]]\nname = 'a'\nregex = '('\n", 3, "not a valid regular expression"),
        ("[[privacy.patterns]]\nname = 'a'\nregex = 'x*'\n", 3, "matches the empty string"),
        ("[[privacy.patterns]]\nname = 'email'\nregex = 'x'\n", 1, "already taken"),
    ],
)
def test_config_errors_name_the_line(toml: str, line: int, words: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        scrubber(toml)
    assert f"flightlog.toml line {line}" in str(err.value)
    assert words in str(err.value)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.sampled_from([4111111111111111, 5500005555555559])
    | st.text(max_size=40)
    | st.sampled_from(
        [MAIL, KEY, "call 555-123-4567", "Bearer abcdef123456", "GB82 WEST 1234 5698 7654 32"]
    ),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "password", "note", MAIL, "x-api-key"]) | st.text(max_size=8),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(_json_values)
def test_scrubbing_a_payload_is_idempotent_and_content_addressed(value: object) -> None:
    s = scrubber()
    p = make_payload(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    once = s.payload(p)
    assert once.hash == hashlib.sha256(once.data).hexdigest()
    assert s.payload(once) is once  # nothing left to scrub
    for secret in (MAIL, KEY, "4111111111111111", "555-123-4567", "abcdef123456"):
        assert secret.encode() not in once.data


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("https://x.io/?api_key=[redacted]mysecretvalue99&x=1", "mysecretvalue99"),
        ("https://x.io/?secret=[redacted:zzzzsecret", "zzzzsecret"),
        ("https://x.io/?token=[redactedHunter2isMine", "Hunter2isMine"),
    ],
)
def test_a_secret_that_only_starts_like_a_marker_is_scrubbed(text: str, secret: str) -> None:
    """Scrubbing twice leaves a marker as it is ("[redacted: url_secret]"), but a value
    that merely begins with "[redacted" is a secret like any other."""
    s = scrubber()
    once = s.text(text)
    assert secret not in once
    assert s.text(once) == once
    for marker in ("[redacted: url_secret]", "[redacted]", "[redacted: url_secret #0123abcd]"):
        already = f"https://x.io/?api_key={marker}&x=1"
        assert s.text(already) == already


def test_a_value_under_a_secret_key_that_only_starts_like_a_marker_is_scrubbed() -> None:
    s = scrubber()
    assert s.mapping({"password": "[redacted]hunter2"}) != {"password": "[redacted]hunter2"}
    once = s.mapping({"password": "hunter2"})
    assert s.mapping(once) == once
    assert s.mapping({"password": "[redacted]"}) == {"password": "[redacted]"}
