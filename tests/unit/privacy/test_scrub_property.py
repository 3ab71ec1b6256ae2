"""Property: the scrubber's screens only save work. Whatever the rules scrub when every rule
runs on every key and text and every value is walked (``secret_trees.Reference``), the
scrubber scrubs too, on nested attributes and payloads with secrets at any depth, with its
caches cold and warm (the same key sets seen first with harmless values).

The cases that escaped before (regression tests below) were found this way: a secret key
nested in an attribute's value whose value no text rule matches, and a secret right after a
newline in a payload or in a nested attribute value (in JSON text the newline is written
``\\n``: the secret follows the letter ``n``, and the rules that need a word boundary found
nothing there).
"""

from __future__ import annotations

import collections
import enum
import hashlib
import json

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flightlog.model import Batch, Payload, Step
from flightlog.privacy import Scrubber, load
from flightlog.privacy.scrub import _OPTS, _unescaped
from tests.unit.privacy.secret_trees import (
    Planted,
    harmless_twin,
    json_values,
    mappings,
    reference,
)

SCRUBBER = load({})  # one for the whole module: its caches warm up across examples
REFERENCE = reference(SCRUBBER)
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _payload(value: object) -> Payload:
    data = orjson.dumps(value, option=_OPTS)
    return Payload(hashlib.sha256(data).hexdigest(), data, len(data), False)


def _stored(value: object) -> bytes:
    return orjson.dumps(value, option=_OPTS, default=repr)


@PROPERTY
@given(mappings())
def test_mapping_scrubbed_as_every_rule_on_every_value(case: tuple) -> None:
    attributes, planted = case
    SCRUBBER.mapping(harmless_twin(attributes))  # the same key sets, harmless first
    got = SCRUBBER.mapping(attributes)
    want = REFERENCE.mapping(attributes)
    assert got == want
    # and what the rules scrub is gone from what would be stored
    stored = _stored(got)
    gone = _stored(want)
    for secret in planted.all():
        if secret.encode() not in gone:
            assert secret.encode() not in stored, secret


@PROPERTY
@given(mappings())
def test_mapping_scrubbed_with_cold_caches(case: tuple) -> None:
    attributes, _ = case
    assert load({}).mapping(attributes) == REFERENCE.mapping(attributes)


# A payload holds JSON: a non-finite number under a secret key is stored as null (nothing
# secret left), and the reference judges what the payload holds, not the value it was made of.
_NON_FINITE = ({"name": [{"PASSWORD": float("inf"), "password": "x"}]}, Planted())


@PROPERTY
@given(json_values())
@example(_NON_FINITE)
def test_payload_scrubbed_as_every_rule_on_every_value(case: tuple) -> None:
    value, planted = case
    SCRUBBER.payload(_payload(harmless_twin(value)))
    p = _payload(value)
    got = SCRUBBER.payload(p)
    stored = orjson.loads(p.data)
    want = REFERENCE.json(stored)
    if want is stored or want == stored:
        assert got.data == p.data
    else:
        assert orjson.loads(got.data) == orjson.loads(orjson.dumps(want, option=_OPTS))
        assert got.hash == hashlib.sha256(got.data).hexdigest()
    for secret in planted.all():
        if secret.encode() not in orjson.dumps(want, option=_OPTS):
            assert secret.encode() not in got.data, secret


@PROPERTY
@given(mappings(), json_values())
@example(({"k": "v"}, Planted()), _NON_FINITE)
def test_batch_scrubbed_as_every_rule_on_every_value(attrs: tuple, value: tuple) -> None:
    """Attributes and payloads of steps in one batch, twice (the second batch warm)."""
    for _ in range(2):
        p = _payload(value[0])
        step = Step("a" * 32, "b" * 16, "s", "tool", 1, 1, input_hash=p.hash)
        step.attributes = attrs[0]
        batch = SCRUBBER.batch(Batch(steps=[step], payloads=[p]))
        assert batch.steps[0].attributes == REFERENCE.mapping(attrs[0])
        (q,) = batch.payloads
        assert batch.steps[0].input_hash == q.hash
        want = REFERENCE.json(orjson.loads(p.data))
        assert orjson.loads(q.data) == orjson.loads(orjson.dumps(want, option=_OPTS))


@PROPERTY
@given(mappings(), json_values())
def test_scrubbing_twice_changes_nothing(attrs: tuple, value: tuple) -> None:
    """The SDK scrubs, then the server it sends to scrubs the same records again."""
    once = SCRUBBER.mapping(attrs[0])
    assert SCRUBBER.mapping(once) == once
    p = SCRUBBER.payload(_payload(value[0]))
    assert SCRUBBER.payload(p).data == p.data


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='ab\\"\n\t\r\x00\x01\x1f/u01é', max_size=12))
def test_unescaped_json_text_holds_each_string_as_decoded(text: str) -> None:
    """The screen's view of JSON text: every string decoded, between its two quotes."""
    encoded = orjson.dumps({text: [text]}).decode()
    assert _unescaped(encoded) == '{"' + text + '":["' + text + '"]}'


# -- the escapes found, pinned ---------------------------------------------------------------


def test_secret_key_nested_in_an_attribute_value() -> None:
    """A secret key one or more levels down, under a value no text rule matches (opaque,
    shorter than three characters, not a text), with the same key set seen harmless first."""
    s = load({})
    cases = [
        {"headers": {"credential": "opaque123"}},
        {"headers": {"x-session-token": "opaque123"}},
        {"headers": {"password": "ab"}},
        {"headers": {"password": ["hunter2"]}},
        {"llm": [{"cookie": "ab"}]},  # OTLP "llm.0.cookie", folded by unflatten
        {"a": {"b": {"Bearer": "opaque123"}}},
        {"a": {"aidAccessKey": "opaque123"}},
    ]
    for case in cases:
        s.mapping(harmless_twin(case))
        got = orjson.dumps(s.mapping(case))
        assert b"opaque123" not in got and b'"ab"' not in got and b"hunter2" not in got, got
        assert b"[redacted: credential]" in got


def test_secret_after_a_newline_in_a_payload() -> None:
    s = load({})
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    for value, secret in [
        ({"prompt": f"my key:\n{key}"}, key),
        ({"prompt": "Call me at:\n+44 20 7946 0958"}, "+44 20 7946 0958"),
        ("SSN:\n078-05-1120", "078-05-1120"),
        ("IBAN\tDE89370400440532013000", "DE89370400440532013000"),
        ("x\r\nAKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("reply:\n415-555-0100", "415-555-0100"),
    ]:
        got = s.payload(_payload(value))
        assert secret.encode() not in got.data, got.data


def test_secret_after_a_newline_in_a_nested_attribute_value() -> None:
    s = load({})
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    got = s.mapping({"messages": [{"role": "user", "content": f"hi\n{key}"}]})
    assert got == {"messages": [{"role": "user", "content": "hi\n[redacted: openai_key]"}]}


def test_trigger_inside_another_trigger() -> None:
    """ "aida" (an AWS key prefix) must not hide "access_token" that starts inside it."""
    assert load({}).text("aidaccess_token=hunter2x") == (
        "aidaccess_token=[redacted: secret_assignment]"
    )


class Header(enum.StrEnum):
    AUTH = "authorization"


def test_values_of_other_types_are_scrubbed_as_stored() -> None:
    """A tuple, a dict subclass, a str-subclass key: scrubbed as the JSON stored for them."""
    s = load({})
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    assert s.mapping({"t": (key, 1)}) == {"t": ["[redacted: openai_key]", 1]}
    assert s.mapping({"h": collections.OrderedDict(Authorization="opaque123")}) == {
        "h": {"Authorization": "[redacted: credential]"}
    }
    # the plain key set seen first must not vouch for the str-subclass one, nor the reverse
    assert s.mapping({"authorization": "opaque123"}) == {"authorization": "[redacted: credential]"}
    got = s.mapping({Header.AUTH: "opaque123"})
    assert list(got.values()) == ["[redacted: credential]"]
    unchanged = {"t": ("ok", 1)}
    assert s.mapping(unchanged) is unchanged


def test_your_own_keys_and_patterns_walk_nested_values_and_payloads() -> None:
    from pathlib import Path

    from flightlog.config import parse_config
    from flightlog.privacy import PrivacyConfig

    toml = """
[privacy]
keys = ["x-customer-*"]

[[privacy.patterns]]
name = "customer_id"
regex = '^CUST-[0-9]{6}$'
"""
    s = Scrubber(PrivacyConfig.from_env({}, parse_config(toml, Path("flightlog.toml"))))
    assert s.mapping({"h": {"X-Customer-Ref": "opaque123"}}) == {
        "h": {"X-Customer-Ref": "[redacted: credential]"}
    }
    assert s.mapping({"h": ["CUST-123456"]}) == {"h": ["[redacted: customer_id]"]}
    got = s.payload(_payload({"id": "CUST-123456"}))
    assert orjson.loads(got.data) == {"id": "[redacted: customer_id]"}


def test_digits_of_other_scripts_screened_as_the_rules_count_them() -> None:
    """The phone rule's \\d matches full-width and Arabic-Indic digits; the screen counted
    only ASCII ones, so a phone number written in them was stored in clear."""
    texts = [
        "call +6４٣6٣24 now",
        "tel: ５５５-０１２-３４５６",
        "call +٩٧١ ٥٠ ١٢٣ ٤٥٦٧",
        "call +1 555 ０１２ 3456 é",
    ]
    for text in texts:
        want = REFERENCE.text(text)
        assert want != text, text  # the rules do scrub it
        assert SCRUBBER.text(text) == want
        assert SCRUBBER.mapping({"note": text}) == REFERENCE.mapping({"note": text})
        assert SCRUBBER.value({"nested": [text]}) == REFERENCE.json({"nested": [text]})
        got = SCRUBBER.payload(_payload({"prompt": text}))
        assert orjson.loads(got.data) == REFERENCE.json({"prompt": text})


# -- secret keys inside JSON text, marker-like prefixes, digits of other scripts in cards ----


def _card_digits(n: int) -> str:
    """A Luhn-valid 16-digit Visa number from ``n``."""
    digits = [4] + [int(c) for c in f"{n:014d}"]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


JSON_TEXT_SECRETS = [
    # (a JSON text as a string value, the secret it holds)
    ('{"credential": "opaque-value-123"}', "opaque-value-123"),
    ('{"password": "x7"}', '"x7"'),
    ('{"clientSecret": "Zq-opaque-1"}', "Zq-opaque-1"),
    ('{"x-api-key": "Zq-opaque-2", "model": "gpt-4o"}', "Zq-opaque-2"),
    ('{"REFRESH_TOKEN": "Zq-opaque-3"}', "Zq-opaque-3"),
    ('{"headers": {"Authorization": "Zq-opaque-4"}}', "Zq-opaque-4"),
    ('{"\\u0070assword": "Zq-opaque-5"}', "Zq-opaque-5"),
    ('[{"name": "login", "arguments": "{\\"password\\": \\"Zq-opaque-6\\"}"}]', "Zq-opaque-6"),
    ('{"a": "{\\"b\\": \\"{\\\\\\"apiKey\\\\\\": \\\\\\"Zq-opaque-7\\\\\\"}\\"}"}', "Zq-opaque-7"),
    ('{"client_secret": {"v": ["Zq-opaque-8", 1]}, "n": 1}', "Zq-opaque-8"),
    ('{"session-token": 123456789}', "123456789"),
    # JSON text inside free text, and cut short (a truncated attribute)
    ('tool said: {"access_token": "Zq-opaque-9"} and stopped', "Zq-opaque-9"),
    ('{"messages": [{"password": "Zq-opaque-10", "content": "hi', "Zq-opaque-10"),
    # a JSON text as a JSON string (encoded twice)
    ('"{\\"secret\\": \\"Zq-opaque-11\\"}"', "Zq-opaque-11"),
]


def test_secret_keys_inside_json_text_are_scrubbed() -> None:
    """A secret key inside a JSON *text* (tool-call arguments, a message's content, an
    attribute holding serialised JSON) loses its value as a key of a structured value does;
    the text stays valid JSON where it was."""
    s = load({})
    for text, secret in JSON_TEXT_SECRETS:
        for got in (
            s.text(text),
            s.mapping({"tool.arguments": text})["tool.arguments"],
            s.value({"content": [text]})["content"][0],
            orjson.loads(s.payload(_payload({"arguments": text})).data)["arguments"],
            orjson.loads(s.payload(_payload(text)).data),
        ):
            assert secret not in got, (text, got)
            assert "[redacted: credential]" in got, (text, got)
            try:
                orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            orjson.loads(got)  # still JSON


def test_json_text_keeps_its_other_bytes() -> None:
    """Only the secret's value changes: spacing, order, escapes and numbers stay as written."""
    s = load({})
    text = '{ "z": 1.50, "password" : "hunter2",\n  "note": "caf\\u00e9", "n": [1e3, null] }'
    assert s.text(text) == (
        '{ "z": 1.50, "password" : "[redacted: credential]",\n'
        '  "note": "caf\\u00e9", "n": [1e3, null] }'
    )
    # a card number as a JSON number inside a JSON text becomes a JSON string
    card = _card_digits(7)
    assert orjson.loads(s.text(f'{{"n": {card}}}')) == {"n": "[redacted: card_number]"}
    # what needs nothing is the very same text
    plain = '{"model": "gpt-4o", "max_tokens": 512, "tokens": ["a", "b"]}'
    assert s.text(plain) is plain


def test_json_text_scrubbed_as_its_parsed_value() -> None:
    s = load({})
    for text, _ in JSON_TEXT_SECRETS:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        assert orjson.loads(s.text(text)) == REFERENCE.json(value), text


@PROPERTY
@given(json_values(), st.booleans(), st.integers(0, 2))
def test_json_text_scrubbed_as_its_value(case: tuple, ascii_only: bool, wraps: int) -> None:
    """Any value as JSON text (escaped or not, held in JSON strings ``wraps`` times more):
    what is left parses to what scrubbing the value gives, and no value planted under a
    secret key is left anywhere."""
    value, planted = case
    value = orjson.loads(orjson.dumps(value, option=_OPTS))  # (what JSON can hold)
    if not isinstance(value, dict | list):
        value = [value]  # (a bare number or string is text: "4111..." is a card number)
    text = json.dumps(value, ensure_ascii=ascii_only)
    for _ in range(wraps):
        text = json.dumps({"arguments": text}, ensure_ascii=ascii_only)
    got = SCRUBBER.text(text)
    assert SCRUBBER.text(got) == got
    assert got == REFERENCE.text(text)
    kept = orjson.dumps(REFERENCE.json(value), option=_OPTS)
    for secret in planted.by_key:  # (unless it is under no secret key: "aidatoken")
        if secret.encode() not in kept:
            assert secret not in got, secret
    unwrapped = orjson.loads(got)
    for _ in range(wraps):
        unwrapped = orjson.loads(unwrapped["arguments"])
    assert unwrapped == REFERENCE.json(value)


def test_json_text_nested_deeply_or_large_is_bounded() -> None:
    """JSON nested in strings many levels deep, brackets nested far deeper than any parser
    takes, and a large text: answered, without a secret let through."""
    import time

    s = load({})
    inner: object = {"password": "Zq-deep-secret"}
    for _ in range(18):  # (past the 16 levels walked; each level doubles the backslashes)
        inner = {"next": orjson.dumps(inner).decode()}
    text = orjson.dumps(inner).decode()
    got = s.text(text)
    assert "Zq-deep-secret" not in got
    deep = "[" * 100_000 + '{"password": "Zq-deep-2"}' + "]" * 100_000
    assert "Zq-deep-2" not in s.text(deep)
    big = orjson.dumps({"rows": [{"id": i, "token": f"Zq{i:06d}"} for i in range(20_000)]})
    start = time.process_time()
    got = s.text(big.decode())
    assert time.process_time() - start < 20  # (not a timing assertion: a hang guard)
    assert "Zq000123" not in got and "Zq019999" not in got
    # a pathological text for backtracking: many quotes and backslashes, no structure
    evil = '"\\' * 50_000 + '":' + '{"' * 50_000
    s.text(evil)


@pytest.mark.parametrize(
    "text",
    [
        "password=[redacted]hunter2",
        "password: [x]secret99",
        "api_key=[redacted: secret_assignment]hunter2",
        "password=[redacted: secret_assignment][redacted]hunter2",
        "password=ab[cdefgh",
        "Authorization: Bearer [x]Zq0123456789abcdef",
        "see ?api_key=[redacted]hunter2&x=1",
    ],
)
def test_value_starting_like_a_marker_is_scrubbed(text: str) -> None:
    s = load({})
    got = s.text(text)
    for secret in ("hunter2", "secret99", "cdefgh", "Zq0123456789abcdef"):
        assert secret not in got, got
    assert s.text(got) == got


@pytest.mark.parametrize(
    "text",
    [
        "password=[redacted: secret_assignment]",
        "password: [redacted]",
        'password="[redacted: credential]"',
        "api_key=[redacted: secret_assignment #0123456789abcdef], next",
        "?api_key=[redacted: url_secret]",
        "Authorization: Bearer [redacted: authorization]",
    ],
)
def test_markers_left_by_a_scrub_stay(text: str) -> None:
    assert load({}).text(text) == text


def _fullwidth(digits: str, sep: str = " ") -> str:
    out = "".join(chr(0xFF10 + int(c)) for c in digits)
    return sep.join(out[i : i + 4] for i in range(0, len(out), 4))


def _arabic(digits: str) -> str:
    return "".join(chr(0x0660 + int(c)) for c in digits)


def test_card_numbers_in_digits_of_other_scripts() -> None:
    card = _card_digits(12345)
    texts = [
        _fullwidth("4111111111111111"),  # "４１１１ １１１１ １１１１ １１１１"
        _fullwidth(card),
        _fullwidth(card, ""),
        _fullwidth(card, "\u3000"),  # ideographic space
        _fullwidth(card, "\uff0d"),  # full-width hyphen
        _arabic(card),
        card[:8] + _fullwidth(card[8:], ""),  # mixed
        " ".join(card[i : i + 4] for i in range(0, 16, 4)).replace(" ", "\u00a0"),
    ]
    for text in texts:
        for got in (
            SCRUBBER.text(f"card {text} ok"),
            SCRUBBER.mapping({"note": f"card {text}"})["note"],
            orjson.loads(SCRUBBER.payload(_payload({"p": f"card {text}"})).data)["p"],
        ):
            assert got.startswith("card [redacted: card_number]"), (text, got)


def test_ibans_and_ssns_in_digits_of_other_scripts() -> None:
    iban = "DE89370400440532013000"
    fw = "".join(chr(ord(c) + 0xFEE0) for c in iban)  # full-width letters and digits
    spaced = " ".join(iban[i : i + 4] for i in range(0, 22, 4))
    for text in (
        fw,
        iban[:4] + _fullwidth(iban[4:], ""),
        spaced.replace(" ", "\u3000"),
        "DE89" + _arabic(iban[4:]),
    ):
        got = SCRUBBER.text(f"IBAN {text} ok")
        assert got == "IBAN [redacted: iban] ok", (text, got)
    for text in ("０７８-０５-１１２０", "078\uff0d05\uff0d1120"):
        got = SCRUBBER.text(f"SSN {text} ok")
        assert got == "SSN [redacted: us_ssn] ok", (text, got)


def test_json_text_secret_keys_hashed_or_dropped_stay_json() -> None:
    from pathlib import Path

    from flightlog.config import parse_config
    from flightlog.privacy import PrivacyConfig

    texts = [
        '{"a": 1, "password": "x", "b": 2}',
        '{"a": 1, "password": "x"}',
        '{"password": "x", "token": [1, 2], "b": 3}',
        '[{"a":1 , "secret" : {"x": 1}}]',
    ]
    for action in ("drop", "hash"):
        cfg = parse_config(f'[privacy.actions]\ncredential = "{action}"\n', Path("f.toml"))
        s = Scrubber(PrivacyConfig.from_env({"FLIGHTLOG_PRIVACY_SALT": "s" * 20}, cfg))
        for text in texts:
            got = s.text(text)
            value = orjson.loads(got)
            want = s.value(orjson.loads(text))  # as the same keys in a structured value
            assert value == want, (action, text, got)
            assert s.text(got) == got
