"""The screen's digit part, computed the fast way (an ASCII text's digits counted on its UTF-8
bytes, the seven-digit run found by one possessive pass), answers exactly as the plain way:
the count of the rules' ``\\d`` (digits of every script) and ``_DIGIT_RUN.search``. A wrong
answer here would let a phone or card number through unscrubbed, or cost the rules' passes
on texts that need none."""

from __future__ import annotations

import random
import re

import pytest

from flightlog.model import Payload
from flightlog.privacy import load
from flightlog.privacy.scrub import _DIGIT_RUN, _RUN_SCAN, _SHAPE, _shape_run

ALPHABET = (
    "0123456789" + " .-/()" + "\u3000\uff0d\u00a0" + "ab:\n" + "\u0663\u0664\u00b2\u00e9" + "\ufffd"
)


def _reference(text: str) -> tuple[int, bool]:
    return len(re.findall(r"\d", text)), _DIGIT_RUN.search(text) is not None


@pytest.mark.parametrize(
    ("text", "run"),
    [
        ("1234567", True),
        ("123456", False),
        ("12 34 56 7", True),
        ("12  34  56  7", True),  # two separators between digits
        ("123   4567", False),  # three break the run
        ("(415) 555-0100", True),
        ("+1 (415) 555-0100", True),
        ("P-100000, amount 500 EUR", False),
        ("call_00001234 and 1234567", True),
        ("1-2-3-4-5-6 x 1.2.3.4.5.6.7", True),
        ("1-2-3-4-5-6-", False),
        ("\u0663\u0664\u0665\u0666\u0667\u0668\u0669", True),  # another script's digits
        ("12345\n67", False),  # a newline is no separator
        ("", False),
        ("no digits at all", False),
    ],
)
def test_run_scan_examples(text: str, run: bool) -> None:
    assert (_DIGIT_RUN.search(text) is not None) is run
    assert (_RUN_SCAN.match(text) is not None) is run
    if text.isascii():
        assert _shape_run(text.encode().translate(_SHAPE)) is run
    scrubber = load({})
    assert scrubber._screen(text)[1:] == _reference(text)
    assert scrubber._screen(text, data=text.encode())[1:] == _reference(text)


def test_run_scan_answers_as_the_digit_run_on_random_texts() -> None:
    rng = random.Random(13)
    seen = 0
    for _ in range(40_000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))
        want = _DIGIT_RUN.search(text) is not None
        assert (_RUN_SCAN.match(text) is not None) is want, text
        seen += want
    assert 1_000 < seen < 39_000  # both answers seen often


def test_shape_run_answers_as_the_digit_run_on_random_ascii_texts() -> None:
    """The ASCII screen (a text's shape, then string operations) against the regex, on texts
    of digits, every separator and runs of them, other bytes, newlines and tabs."""
    rng = random.Random(29)
    separators = "".join(chr(b) for b in range(128) if _SHAPE[b] == 0x20)
    assert set(" .-/()") <= set(separators)
    alphabet = "0123456789" * 2 + separators * 2 + "   " + "ab:\n\tx_+,;#"
    scrubber = load({})
    seen = 0
    for _ in range(40_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        want = _reference(text)
        assert _shape_run(text.encode().translate(_SHAPE)) is want[1], text
        assert scrubber._screen(text)[1:] == want, text
        seen += want[1]
    assert 1_000 < seen < 39_000  # both answers seen often


def test_screen_counts_digits_as_the_text_does() -> None:
    scrubber = load({})
    rng = random.Random(17)
    for _ in range(5_000):
        raw = bytes(rng.choice(b"0123456789 -().x\n\xc3\xa9\xd9\xa3\xff\x80") for _ in range(30))
        text = raw.decode("utf-8", "replace")  # how a payload's bytes are read
        digits, run = _reference(text)
        for got in (scrubber._screen(text), scrubber._screen(text, data=raw)):
            assert got[1:] == (digits, run), raw


def test_payload_with_a_phone_number_is_scrubbed_and_compact() -> None:
    scrubber = load({})
    data = b'{"note":"call me on +1 415 555 0100","n":"P-100000, amount 500 EUR"}'
    p = Payload(hash="h", data=data, size=len(data))
    q = scrubber.payload(p)
    assert q is not p
    assert b"555 0100" not in q.data and b"[redacted: phone]" in q.data
    clean = b'{"n":"P-100000, amount 500 EUR, section 4.3"}'
    assert scrubber.payload(Payload(hash="c", data=clean, size=len(clean))).data is clean
