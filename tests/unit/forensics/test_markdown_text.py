"""Captured values in the Markdown postmortem: markup is escaped, plain text stays plain."""

from __future__ import annotations

import pytest

from flightlog._json import tidy
from flightlog.forensics.report import _md


@pytest.mark.parametrize(
    ("raw", "md"),
    [
        ("validate_claim", "validate_claim"),
        ("returned []", "returned []"),
        ("2 search -> 3 assess", "2 search -> 3 assess"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("[click](javascript:alert(1))", "\\[click](javascript:alert(1))"),
        ("*bold* and _it_", "\\*bold\\* and \\_it\\_"),
        ("# not a heading", "\\# not a heading"),
        ("1. not a list", "1\\. not a list"),
        ("a|b", "a\\|b"),
        ("line\nbreak", "line break"),
        ("&amp;", "&amp;amp;"),
    ],
)
def test_markdown_text(raw: str, md: str) -> None:
    assert _md(raw) == md


def test_tidy_removes_float_noise_only() -> None:
    assert tidy(
        {"c": 0.8900000000000001, "l": [0.1 + 0.2], "i": 3, "s": "0.30000000000000004"}
    ) == {
        "c": 0.89,
        "l": [0.3],
        "i": 3,
        "s": "0.30000000000000004",
    }
