"""Recorded text is untrusted: neutralise terminal control before it reaches a terminal.

An LLM or tool output, an error message or a span name can carry ANSI/ECMA-48 sequences
(``ESC [ ... m``, cursor moves, screen clears), OSC sequences (``ESC ] 8 ;; url BEL``
hyperlinks, ``ESC ] 52`` clipboard writes, window titles), 8-bit C1 controls (``U+009B``
CSI, ``U+009D`` OSC), carriage returns and backspaces that overwrite what was printed, and
bidirectional overrides that reorder it (CVE-2021-42574, "Trojan Source").

``clean`` replaces every such character with a visible escape (``\\x1b``, ``\\u202e``), so
the text stays readable and nothing is interpreted. Newlines and tabs are kept unless
``one_line`` (then they become ``\\n``/``\\t`` too). Every text renderer of the CLI prints
through ``echo``; JSON output escapes the same characters as ``\\uXXXX`` (``json_safe``).
"""

from __future__ import annotations

import re

import click

# C0 controls but \t and \n, DEL, C1 controls, and the Unicode bidi/isolate controls and
# line/paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    if c == 0x0A:
        return "\\n"
    if c == 0x09:
        return "\\t"
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def clean(text: str, *, one_line: bool = False) -> str:
    """``text`` with every terminal control character shown as an escape."""
    return (_CONTROL_ONE_LINE if one_line else _CONTROL).sub(_visible, text)


def json_safe(text: str) -> str:
    """JSON text with DEL, C1 and bidi controls written as ``\\uXXXX`` (JSON serialisers
    escape C0 controls but may leave these raw; the escaped form decodes to the same data)."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def echo(text: str = "", *, err: bool = False, nl: bool = True, one_line: bool = False) -> None:
    """``click.echo`` of ``clean(text)``: how the CLI prints anything recorded."""
    click.echo(clean(text, one_line=one_line), err=err, nl=nl)
