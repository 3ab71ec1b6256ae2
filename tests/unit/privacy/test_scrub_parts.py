"""A mapping is screened part by part (its keys and values) where that finds exactly what
screening the joined text finds: the screen's answer, and so the scrubbed mapping, must not
change. Checked on mappings built to straddle the joins (a secret split over two values, a
phone number around a newline, digits summed over parts) and random ones."""

from __future__ import annotations

import random
import re

from flightlog.privacy import load
from flightlog.privacy.scrub import _joined, _parts_safe

PIECES = [
    "password",
    "=",
    ": hunter2-secret",
    "Bearer",
    " abcdef123456",
    "sk-",
    "proj-abcdefghijklmnopqrstuvwxyz012345",
    "+1 415",
    " 555 0100",
    "(415) 555-0100",
    "415-555-0100",
    "4111 1111 1111 1111",
    "4111111111111111",
    "DE89 3704 0044 0532 0130 00",
    "078-05-1120",
    "jane.doe@example.com",
    "jane.doe@",
    "example.com",
    "https://user:pw@host/x",
    "?api_key=abc123",
    "-----BEGIN RSA PRIVATE KEY-----",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "call_00000000",
    "conv-12",
    "1234567",
    "\n",
    " ",
    "x",
    "é",
    "٣٤٥٦٧٨٩",  # digits of another script
]


def _value(rng: random.Random) -> object:
    pick = rng.random()
    if pick < 0.6:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 4)))
    if pick < 0.7:
        return rng.choice([0, 7, 10**12 + 7, 4111111111111111, -(10**13), 1.5, True, None])
    if pick < 0.85:
        return [_value(rng) for _ in range(rng.randint(0, 3))]
    return {rng.choice(PIECES): _value(rng) for _ in range(rng.randint(0, 3))}


def test_part_by_part_screen_answers_as_the_joined_text() -> None:
    scrubber = load({})
    rng = random.Random(5)
    both = 0
    for _ in range(3000):
        value = {
            "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 2))): _value(rng)
            for _ in range(rng.randint(1, 5))
        }
        mask = scrubber._candidates(_joined(value))
        assert scrubber._mapping_candidates(value) == mask
        want = scrubber._maybe(_joined(value), mask=mask)
        assert scrubber._maybe_parts(value, mask) == want, value
        both += want
        # the screen only saves work: the mapping is scrubbed as walking every value does
        # (which also scrubs secret keys nested in a value, whatever the rules see)
        assert scrubber.mapping(value) == scrubber._dict(value)
    assert 300 < both < 2900  # both answers seen often


def test_rules_that_read_newlines_or_text_ends_are_not_split() -> None:
    assert not _parts_safe(re.compile(r"key\s*=\s*\w+"))
    assert not _parts_safe(re.compile(r"^secret"))
    assert not _parts_safe(re.compile(r"secret$"))
    assert not _parts_safe(re.compile(r"a[^b]c"))  # a negated class holds the newline
    assert not _parts_safe(re.compile(r"a.b", re.DOTALL))
    assert not _parts_safe(re.compile(r"(?s:a.b)"))
    assert not _parts_safe(re.compile(r"\d*"))  # can match nothing
    assert not _parts_safe(re.compile(r"a(?=\s)"))
    assert _parts_safe(re.compile(r"(?<![\w+])\+\d{3}[ .\-]?\d{4}(?!\w)"))
    assert _parts_safe(re.compile(r"\bsk-[A-Za-z0-9_\-]{20,}"))
    assert _parts_safe(re.compile(r"a.b"))  # without DOTALL the dot skips newlines
