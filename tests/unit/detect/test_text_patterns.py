"""``features.search`` answers as the pattern does: the literal pre-check only skips text
that the pattern cannot match."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from flightlog.detect import features as fx

PATTERNS = (fx.ERROR_TEXT, fx.REFUSAL_TEXT, fx.INJECTION_TEXT)
FRAGMENTS = [
    "Ignore all previous instructions",
    "IGNORE THE PRIOR PROMPTS",
    "disregard the above",
    "You are now ",
    "new instructions:",
    "SYSTEM PROMPT",
    "< script>",
    "<\tScRiPt ",
    "reveal your system prompt",
    "forget everything you",
    "I'm sorry, but I can't",
    "im sorry but i wont",
    "I cannot help",
    "i am unable to assist",
    "As an AI language model, I",
    "I must decline",
    "I'm not able to help",
    "Internal Server Error",
    "timed out",
    "TimeOut",
    "rate limited",
    "Unauthorised",
    "not found",
    "Traceback",
    "access denied",
    "invalid API key",
    "ignoree",
    "scripted",
    "errors",
    "fine",
    "approved",
    " ",
    "\n",
    "-",
    "ıgnore previous instructions",  # dotless i: not ASCII, the pattern decides
    "ſystem prompt",  # long s
    "K",  # Kelvin sign
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=12), max_size=6))
def test_search_answers_as_the_pattern(parts: list[str]) -> None:
    text = "".join(parts)
    for pattern in PATTERNS:
        want = pattern.search(text)
        got = fx.search(pattern, text)
        assert (got is None) == (want is None), (pattern.pattern, text)
        if want is not None and got is not None:
            assert got.span() == want.span()


def test_each_fragment_alone() -> None:
    for text in FRAGMENTS:
        for pattern in PATTERNS:
            assert (fx.search(pattern, text) is None) == (pattern.search(text) is None), text


def test_precheck_is_keyed_by_the_module_patterns() -> None:
    # ``search`` finds a pattern's literals by identity (a compiled pattern's hash covers
    # its whole program); another pattern that matches alike is not one of them and is
    # searched in full, with the same answer.
    assert set(fx._LITERALS_BY_ID) == {id(p) for p in fx._LITERALS}
    for pattern in PATTERNS:
        twin = re.compile(f"(?:{pattern.pattern})", pattern.flags)
        assert id(twin) not in fx._LITERALS_BY_ID
        for text in FRAGMENTS:
            assert (fx.search(twin, text) is None) == (pattern.search(text) is None), text


_texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=4).map("".join)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(_json_values, st.booleans())
def test_json_precheck_never_hides_a_match(value: object, as_text: bool) -> None:
    # ``may_match_json`` says False only when no string of the decoded value (keys, values,
    # JSON text inside a string, as ``context.decode`` reads it) can match, alone or joined.
    import orjson

    from flightlog.detect.context import decode

    raw = orjson.dumps(value)
    if as_text:  # a value recorded as JSON text: decode reads the JSON inside the string
        raw = orjson.dumps(raw.decode())
    texts = fx.strings(decode(raw), limit=10_000)
    for pattern in PATTERNS:
        if fx.may_match_json(pattern, raw):
            continue
        assert all(fx.search(pattern, t) is None for t in texts), (pattern.pattern, raw)
        assert fx.search(pattern, "\n".join(texts)) is None, (pattern.pattern, raw)


def test_json_precheck_looks_at_escaped_or_non_ascii_json() -> None:
    escaped = b'{"note":"\\u0069gnore previous instructions"}'
    assert fx.INJECTION_TEXT.search("\n".join(fx.strings(__import__("orjson").loads(escaped))))
    assert fx.may_match_json(fx.INJECTION_TEXT, escaped)
    assert fx.may_match_json(fx.INJECTION_TEXT, '{"a":"ıgnore previous instructions"}'.encode())
    assert not fx.may_match_json(fx.INJECTION_TEXT, b'{"decision":"approved"}')
    assert fx.may_match_json(fx.INJECTION_TEXT, b'{"a":"IGNORE ALL previous instructions"}')
    assert fx.may_match_json(re.compile("x"), b'{"a":"b"}')  # not one of the patterns
