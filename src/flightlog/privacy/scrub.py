"""Scrubbing a ``Batch`` before it is stored or leaves the process.

``Scrubber.batch(batch)`` is the one call both front doors make: the SDK's background writer
(embedded and remote sinks) and the server's ingestion, right after decoding. It rewrites, in
place, every place captured text can reach:

- payloads (inputs and outputs): decoded, scrubbed, re-encoded in the same canonical JSON and
  re-addressed by the SHA-256 of the *scrubbed* bytes; the runs and steps that referenced the
  old hash are pointed at the new one, so content addressing (and content lineage, which
  compares those bytes) stays consistent;
- attributes of runs and steps, finding evidence: secret keys scrubbed whatever the value,
  values scrubbed by the detectors;
- free text: run reasons, error messages and tracebacks, finding messages, step and workflow
  names (only where a detector matches).

Speed is decided once, here: one combined regular expression screens each text, and only
texts it matches pay for the per-rule passes; a payload whose JSON text it does not match
is passed on untouched (no decoding, no re-hashing). A bug in a rule never lets a value
through: a value that cannot be scrubbed is replaced by ``[redacted: error]``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import re
from collections import Counter
from typing import Any

import orjson

from flightlog import _json
from flightlog.model import Batch, ErrorInfo, Payload
from flightlog.privacy.config import KEY_RULE, PrivacyConfig, Rule
from flightlog.privacy.detectors import DASH_SEPS, SPACE_SEPS

log = logging.getLogger("flightlog.privacy")

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_DROP = object()  # a sentinel: discard the value that holds the match
# Words that may name a secret key inside JSON text (a screen, not the rule itself).
_KEY_WORDS: tuple[str, ...] = (
    "pass",
    "secret",
    "apikey",
    "api_key",
    "api-key",
    "access",
    "token",
    "bearer",
    "auth",
    "cookie",
    "credential",
    "private",
    "signing",
    "pwd",
    "pin",
    "cvv",
    "cvc",
    "encryption",
    "aster",  # master_key ("m" would start a branch of the screen's alternation of its own)
    "subscription",
    "api key",
)
# Letters that match an ASCII letter when a rule ignores case but do not lower-case to it
# (the dotted and dotless i, the long s): the screen reads them as that letter.
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s"}
_CACHED_LEN = 120  # texts up to this long that need nothing are remembered ...
_CACHED_TEXTS = 8192  # ... this many at most (then forgotten all at once)
# Seven digits in a row, single separators allowed: what every phone, card, IBAN and SSN has.
# (Separators: those of the phone rule, and the spaces and hyphens of ``detectors._SEPS``.)
_RUN_SEP = rf"[ .\-/(){SPACE_SEPS}{DASH_SEPS}]"
_DIGIT_RUN = re.compile(rf"\d(?:{_RUN_SEP}{{0,2}}\d){{6}}")
# ``_DIGIT_RUN.search(text) is not None`` as ``_RUN_SCAN.match(text) is not None``, in one
# pass: ``_DIGIT_RUN`` restarts at every digit of a shorter chain of digits (a digit, then
# digits each after at most two separators), three times the cost on text with numbers in
# it. This steps over runs of non-digits and over whole chains of at most six digits (a
# chain taken only when no digit continues it), all possessively, then needs seven digits
# of one chain: any match of ``_DIGIT_RUN`` lies in one chain, the first seven digits of a
# chain of seven or more match it. Pinned against ``_DIGIT_RUN`` in the privacy tests.
_RUN_SCAN = re.compile(
    rf"(?:\D++|\d(?:{_RUN_SEP}{{0,2}}+\d){{0,5}}+(?!{_RUN_SEP}{{0,2}}+\d))*+"
    rf"\d(?:{_RUN_SEP}{{0,2}}+\d){{6}}"
)
_DIGIT_BYTES = b"0123456789"
_ANY_DIGIT = re.compile(r"\d")  # a decimal digit of any script, as the rules' \d


def _trie(words: list[str]) -> str:
    """An alternation of literal words as a trie, one character at a time
    (``b(?:earer|asic)|t(?:oken(?: |\\n|...))``): the regex engine then follows one branch per
    character instead of trying every word that shares a first letter (the screen's
    triggers share many: ``a`` starts twenty of them). A word that ends where a longer one
    goes on makes the rest optional, tried first, so the longest trigger is reported."""
    root: dict[str, Any] = {}
    for w in words:
        node = root
        for c in w:
            node = node.setdefault(c, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [re.escape(c) + emit(child) for c, child in sorted(node.items()) if c]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else f"(?:{'|'.join(alts)})"
        if "" in node:
            return f"(?:{body})?"
        return body

    alts = [re.escape(c) + emit(child) for c, child in sorted(root.items()) if c]
    return "|".join(alts)


def _or(values: Any) -> int:
    out = 0
    for v in values:
        out |= v
    return out


_CARD_INT_MIN = 10**12  # integers of 13 digits or more may be card numbers


# An ASCII text's shape for the digit screen: each digit "0", each separator _DIGIT_RUN
# allows between two digits " ", any other byte "x" (read off _DIGIT_RUN itself: "1", the
# byte, then six digits match it only when the byte is a separator).
_SHAPE = bytes(
    0x30
    if 0x30 <= b <= 0x39
    else 0x20
    if b < 0x80 and _DIGIT_RUN.fullmatch(f"1{chr(b)}234567")
    else 0x78
    for b in range(256)
)


def _shape_run(shape: bytes) -> bool:
    """``_DIGIT_RUN.search(text) is not None`` for an ASCII text, from its ``_SHAPE``: three
    separators or more in a row break a run (an "x" among them), the others join the
    digits around them, so seven digits in one run are seven "0" in a row once the
    separators left are removed."""
    return b"0000000" in shape.replace(b"   ", b"x").replace(b" ", b"")


def _unescaped(text: str) -> str:
    """JSON text with the escapes inside its strings undone, for screening: each key and
    string then stands between two ``"`` exactly as the walk sees it on its own (a ``"``
    reads as the start or end of a text to every built-in rule). In the escaped text a
    secret after a newline (``\\nsk-...``, ``\\n+44 20 ...``) follows the letter ``n``:
    no word boundary, and the rules that need one found nothing there."""
    if "\\" not in text:
        return text
    # An escaped backslash first (NUL stands in for it: JSON text holds no raw NUL), so
    # that every backslash left starts an escape.
    t = text.replace("\\\\", "\x00")
    t = (
        t.replace('\\"', '"')
        .replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\r", "\r")
        .replace("\\/", "/")
        .replace("\\b", "\b")
        .replace("\\f", "\f")
    )
    if "\\u" in t:
        return _UNICODE_ESCAPE.sub(_unicode_char, t)
    return t.replace("\x00", "\\")


_UNICODE_ESCAPE = re.compile(r"\x00|\\u([0-9a-fA-F]{4})")


def _unicode_char(m: re.Match[str]) -> str:
    code = m.group(1)
    return "\\" if code is None else chr(int(code, 16))


# -- JSON text inside strings ------------------------------------------------------------------
# Tool-call arguments, tool outputs, messages' content: JSON texts held in strings, nested in
# one another. A secret key inside them is a key as in a structured value. Bounds: a JSON text
# held in a string held in a JSON text ... is walked this many levels deep (each level is one
# recursion, and doubles the backslashes: a text nested 16 deep is 2^16 times its size); what
# lies deeper is withheld whole when the screen sees anything in it. Every regex below is
# possessive with one way to match (linear, no backtracking); brackets are counted in a
# loop, not a recursion, so depth of nesting costs nothing but the text's length.
_JSON_DEPTH = 16
_STR = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
# In a valid JSON text: every string (a key when a colon follows) and every integer of 13
# digits or more that is no part of a fraction or an exponent (a card number as a number).
_JSON_TOKENS = re.compile(
    rf"(?P<s>{_STR})(?P<c>\s*+:)?|(?<![\w.+\-])(?P<i>[0-9]{{13,}})(?![\w.])", re.S
)
# In any other text (JSON cut short, JSON inside a message, a Python repr, a log line): a
# key then its value, as JSON writes it ("key": ), as Python's repr of a dict writes it
# ('key': ), or as an assignment, a keyword argument or an environment variable with a
# quoted value (key='...', key="..."; not ==; unquoted values are the rules' to judge:
# secret_assignment, url_secret); a failed attempt consumes nothing, so a stray quote
# before it does not hide it. The same expression finds the keys for the screen: whether a
# text (or what its escapes hide) has a key that names a secret ("max_tokens" holds the
# key word "token" but names none).
_KEY_AT = re.compile(
    r'"(?P<k>[^"\\\n]*+(?:\\.[^"\\\n]*+)*+)"\s*+:\s*+'
    r"|'(?P<q>[^'\\\n]*+(?:\\.[^'\\\n]*+)*+)'\s*+:\s*+"
    r"|(?<![\w.\-$])(?P<a>[A-Za-z_][\w.\-]*+)\s*+=(?!=)\s*+(?=[\"'])"
)
_PAIR_VALUE_AT = re.compile(r"[\"']([^\"'\\\n]{1,128}+)[\"']")
# Characters without which a text holds no key for ``_KEY_AT``.
_KEY_MARKS = ('"', "'", "=")
# A name and a value in one object, as headers, environment variables, form fields and
# OTLP's own key-value lists are written ({"name": "Authorization", "value": "..."}): when
# the name names a secret, the value is one.
# In text (JSON, a repr), the name is looked for before the value, as these formats write
# it.
_PAIR_NAMES = ("name", "key", "field", "header", "param", "parameter")
_PAIR_VALUES = ("value", "val", "values")
_PAIR_AT = re.compile(
    r"[\"'](?:name|key|field|header|param|parameter)[\"']\s*+:\s*+"
    r"[\"']([^\"'\\\n]{1,128}+)[\"']"
)
# ... and a quoted string holding an escape (a JSON text inside it, or a newline before a secret)
_ESCAPED_STR = re.compile(r'"[^"\\\n]*+(?:\\.[^"\\\n]*+)++"')
# A value after a key: a string (its end may be cut off; in double or single quotes),
# brackets, or a bare word.
_STR_OPEN = re.compile(r'"[^"\\]*+(?:\\.?[^"\\]*+)*+"?', re.S)
_SQ_OPEN = re.compile(r"'[^'\\]*+(?:\\.?[^'\\]*+)*+'?", re.S)
_BRACKET_TOKENS = re.compile(
    r'"[^"\\]*+(?:\\.?[^"\\]*+)*+"?|\'[^\'\\]*+(?:\\.?[^\'\\]*+)*+\'?|[\[\]{}()]', re.S
)
_BARE = re.compile(r"[^\s,}\]&;)]*+")
_SPACES = re.compile(r"\s*+")


def _levels(text: str) -> Any:
    """The texts hidden behind escapes, level after level (a JSON text in a string in a JSON
    text ...), for screening: ``\\u0070assword`` is ``password`` one level down."""
    t = text
    for _ in range(_JSON_DEPTH):
        if "\\" not in t:
            return
        u = _unescaped(t)
        if u == t:
            return
        yield u
        t = u


def _looks_json(text: str) -> bool:
    for c in text[:64]:
        if not c.isspace():
            return c in '{["'
    return False


def _valid_json(text: str) -> bool:
    try:
        orjson.loads(text)
        return True
    except orjson.JSONDecodeError:
        pass
    try:  # what orjson refuses but is JSON still: integers past 64 bits, deep nesting
        json.loads(text)
        return True
    except (ValueError, RecursionError):
        return False


def _decoded(token: str) -> str | None:
    """A JSON string token's text (None if it is not one)."""
    if "\\" not in token:
        return token[1:-1]
    try:
        out = orjson.loads(token)
    except orjson.JSONDecodeError:
        try:
            out = json.loads(token)
        except ValueError:
            return None
    return out if type(out) is str else None


def _encoded_str(text: str, like: str) -> str:
    """``text`` as a JSON string token, ASCII-only when ``like`` was."""
    return json.dumps(text, ensure_ascii=like.isascii())


def _value_end(text: str, at: int) -> int:
    """Where the JSON value starting at ``at`` ends (the text's end if it is cut short)."""
    if at >= len(text):
        return at
    c = text[at]
    if c == '"':
        return _STR_OPEN.match(text, at).end()  # type: ignore[union-attr]
    if c == "'":
        return _SQ_OPEN.match(text, at).end()  # type: ignore[union-attr]
    if c in "{[(":
        depth = 0
        for m in _BRACKET_TOKENS.finditer(text, at):
            b = m.group()[0]
            if b in "{[(":
                depth += 1
            elif b in "}])":
                depth -= 1
                if depth == 0:
                    return m.end()
        return len(text)
    return _BARE.match(text, at).end()  # type: ignore[union-attr]


def _after_spaces(text: str, at: int) -> int:
    m = _SPACES.match(text, at)
    return at if m is None else m.end()


def _edited(text: str, edits: list[tuple[int, int, str]]) -> str:
    if not edits:
        return text
    out = []
    at = 0
    for start, end, new in edits:
        out.append(text[at:start])
        out.append(new)
        at = end
    out.append(text[at:])
    return "".join(out)


def _encoded(value: Any) -> str:
    """A value that is not a string or a number as the store writes it (JSON; what JSON
    cannot hold as its repr), escapes undone, for screening."""
    return _unescaped(_json.dumps(value))


def _parts(mapping: dict[str, Any], nested: list[str] | None = None) -> list[str]:
    """The keys and values of a mapping as texts, for screening (joined by newlines, they
    are the text the rules are run on). ``nested``, if given, receives the texts of the
    values that hold keys of their own (objects, lists, other values)."""
    parts: list[str] = []
    for k, v in mapping.items():
        parts.append(k if type(k) is str else str(k))
        t = type(v)
        if t is str:
            parts.append(v)
            if '"' in v or "'" in v or "=" in v:
                # it may be JSON text: its keys are keys (walked as a nested value is), and
                # what its escapes hide is screened too
                if nested is not None:
                    nested.append(v)
                if "\\" in v:
                    for level in _levels(v):
                        parts.append(level)
                        if nested is not None:
                            nested.append(level)
        elif v is None or t is float or t is bool:
            continue
        elif t is int:
            if abs(v) >= _CARD_INT_MIN:
                parts.append(str(v))
        else:
            part = _encoded(v)
            parts.append(part)
            if nested is not None:
                nested.append(part)
            if "\\" in part:  # JSON text inside strings inside: what its escapes hide
                for level in _levels(part):
                    parts.append(level)
                    if nested is not None:
                        nested.append(level)
    return parts


def _joined(mapping: dict[str, Any]) -> str:
    """The keys and values of a mapping as one text, for screening."""
    return "\n".join(_parts(mapping))


_KEY_TEXT_LEN = 2048  # JSON texts up to this long remember whether a key names a secret ...
_KEY_TEXTS = 4096  # ... this many at most (then forgotten all at once)
_SCREENED_LEN = 256  # texts up to this long remember their screen (keys, names, models) ...
_SCREENED_TEXTS = 16384  # ... this many at most (then forgotten all at once)


@functools.lru_cache(maxsize=256)
def _parts_safe(regex: re.Pattern[str]) -> bool:
    """Whether ``regex`` finds in texts joined by newlines exactly what it finds in each
    text: none of its matches can be empty or hold a newline, and none of its assertions
    reads a newline or an end of the text (only ``\\b``/``\\B`` and lookarounds of such
    parts, which see a joining newline as they see the text's start or end). Anything not
    understood counts as unsafe (the joined text is searched, as always)."""
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]

    if regex.flags & (re.DOTALL | re.MULTILINE):
        return False
    try:
        tree = _parser.parse(regex.pattern, regex.flags)
    except Exception:
        return False
    if tree.getwidth()[0] == 0:
        return False
    newline = ord("\n")
    linebreak = {c.CATEGORY_SPACE, c.CATEGORY_NOT_DIGIT, c.CATEGORY_NOT_WORD, c.CATEGORY_LINEBREAK,
                 c.CATEGORY_UNI_SPACE, c.CATEGORY_UNI_NOT_DIGIT, c.CATEGORY_UNI_NOT_WORD,
                 c.CATEGORY_UNI_LINEBREAK}  # fmt: skip
    quiet = {c.CATEGORY_NOT_SPACE, c.CATEGORY_DIGIT, c.CATEGORY_WORD, c.CATEGORY_NOT_LINEBREAK,
             c.CATEGORY_UNI_NOT_SPACE, c.CATEGORY_UNI_DIGIT, c.CATEGORY_UNI_WORD,
             c.CATEGORY_UNI_NOT_LINEBREAK}  # fmt: skip

    def in_matches_newline(items: Any) -> bool | None:
        hit, negate = False, False
        for op, av in items:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                hit = hit or av == newline
            elif op is c.RANGE:
                hit = hit or av[0] <= newline <= av[1]
            elif op is c.CATEGORY and av in linebreak:
                hit = True
            elif not (op is c.CATEGORY and av in quiet):
                return None  # not understood
        return hit != negate

    def safe(items: Any) -> bool:
        for op, av in items:
            if op is c.LITERAL:
                if av == newline:
                    return False
            elif op is c.NOT_LITERAL:
                if av != newline:
                    return False
            elif op is c.IN:
                if in_matches_newline(av) is not False:
                    return False
            elif op is c.ANY:
                continue  # no DOTALL (checked above): never a newline
            elif op is c.AT:
                if av not in (c.AT_BOUNDARY, c.AT_NON_BOUNDARY, c.AT_UNI_BOUNDARY,
                              c.AT_UNI_NON_BOUNDARY):  # fmt: skip
                    return False
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                if not safe(av[2]):
                    return False
            elif op is c.SUBPATTERN:
                if av[1] & (re.DOTALL | re.MULTILINE) or not safe(av[3]):
                    return False
            elif op in (c.ASSERT, c.ASSERT_NOT):
                if not safe(av[1]):
                    return False
            elif op is c.ATOMIC_GROUP:
                if not safe(av):
                    return False
            elif op is c.BRANCH:
                if not all(safe(branch) for branch in av[1]):
                    return False
            elif op is not c.GROUPREF:  # a back-reference repeats what its group matched
                return False
        return True

    try:
        return safe(tree)
    except Exception:
        return False


@functools.lru_cache(maxsize=16)
def _trigger_tables(
    triggers: tuple[tuple[str, int], ...],
) -> tuple[dict[str, int], re.Pattern[str], frozenset[str], re.Pattern[str]]:
    """The screen's tables for ``triggers`` (trigger -> rule bits), built once per trigger
    set: every ``Scrubber`` of the same rules shares them (read-only; ~20 ms to build, most
    of a ``Scrubber``'s construction). Its caches of texts seen stay its own."""
    bits_of = dict(triggers)
    # One literal alternation over the lower-cased text finds the triggers present; a
    # trigger found also stands for the shorter triggers inside it ("sk-ant-" holds
    # "sk-"), as the alternation reports only the longest at a position.
    trigger_bits = {t: _or(bits for u, bits in bits_of.items() if u in t) for t in bits_of}
    trigger_re = re.compile(_trie(list(bits_of)) or r"(?!)")
    # A trigger may start inside another one found before it and end after it ("aida" +
    # "ccess_token" in "aidaccess_token"): where a trigger that can so hide another is
    # found, the triggers are looked for again at every position (a lookahead finds
    # overlapping ones; slower, so only then).
    overlapping = frozenset(
        t
        for t in bits_of
        for u in bits_of
        if any(u.startswith(t[j:]) and len(u) > len(t) - j for j in range(1, len(t)))
    )
    trigger_all_re = re.compile(f"(?=({_trie(list(bits_of))}))" if bits_of else r"(?!)")
    return trigger_bits, trigger_re, overlapping, trigger_all_re


def redacted(name: str, digest: str | None = None) -> str:
    """How a scrubbed value is shown: ``[redacted: email]`` or ``[redacted: email #1a2b...]``."""
    return f"[redacted: {name} #{digest}]" if digest else f"[redacted: {name}]"


# A marker as ``redacted`` writes it (or the ledger's ``[redacted]``): left as it is when
# scrubbed again. Only a whole marker: a secret that merely begins with "[redacted" is scrubbed.
_MARKER = re.compile(r"\[redacted(?:: [^\[\]]+)?\]")


class Scrubber:
    """Applies a ``PrivacyConfig`` to text, JSON values, payloads and whole batches."""

    def __init__(self, config: PrivacyConfig) -> None:
        self.config = config
        self.enabled = config.enabled
        self.rules: tuple[Rule, ...] = config.rules
        self._salt = config.salt or b""
        self._key_action = config.key_action
        self._key_cache: dict[str, bool] = {}
        self._card = any(r.name == "card_number" for r in self.rules)
        self._card_action = next((r.action for r in self.rules if r.name == "card_number"), "")
        self.counts: Counter[str] = Counter()
        self._clean: set[str] = set()  # short texts known to need nothing
        self._screened: dict[str, tuple[int, int, bool]] = {}  # see _screen
        self._keys_cache: dict[tuple[Any, ...], bool] = {}  # see _secret_keys
        self._key_texts: dict[str, bool] = {}  # see _names_secret_key
        # The screen: which rules a text can concern, from substring tests and a digit count
        # (C-speed ``in`` and ``translate``), so that the regular expressions run only on
        # texts that may hold what they look for. A regex alternation of all the rules,
        # tried at every position, cost ~100 µs per short text; this costs ~2 µs.
        triggers: dict[str, int] = {}
        self._always = 0  # rules without a screen (your own patterns)
        self._by_digits: list[tuple[int, int]] = []  # (min digits, rule bit)
        for i, rule in enumerate(self.rules):
            d = rule.detector
            bit = 1 << i
            for t in d.triggers:
                triggers[t] = triggers.get(t, 0) | bit
            if d.min_digits:
                self._by_digits.append((d.min_digits, bit))
            if not d.triggers and not d.min_digits:
                self._always |= bit
        # Words that may name a secret key inside JSON text share the screen, on a bit of
        # their own.
        self._key_bit = 1 << len(self.rules)
        for w in _KEY_WORDS:
            triggers[w] = triggers.get(w, 0) | self._key_bit
        (
            self._trigger_bits,
            self._trigger_re,
            self._overlapping,
            self._trigger_all_re,
        ) = _trigger_tables(tuple(triggers.items()))
        self._min_digits = min((n for n, _ in self._by_digits), default=0)
        # With key patterns of your own, every payload is walked (they are not screened);
        # so it is with patterns of your own (they may read what only the walk shows: the
        # start or end of a text, a backslash).
        self._keys_screened = not config.extra_keys
        self._json_screened = self._keys_screened and not self._always
        # A mapping's parts are screened one by one (and remembered) unless a trigger holds
        # a newline before its end, which could then join two parts. One that ends with a
        # newline ("token\n": "Token" then a space starts a credential) can only join a
        # part to the start of the next, which no rule run on the part sees either.
        self._part_screen = not any("\n" in t[:-1] for t in triggers)
        # Rules whose matches in a mapping's joined text are the matches in its parts: run
        # on each part (short ones remembered) instead of on the joined text.
        self._per_part = [self._part_screen and _parts_safe(r.detector.regex) for r in self.rules]
        self._part_hits: dict[tuple[int, str], bool] = {}

    # -- text -----------------------------------------------------------------------------
    def _screen(
        self, text: str, remember: bool = False, data: bytes | None = None
    ) -> tuple[int, int, bool]:
        """What the screen sees in one text: the bits of the triggers in it, its
        digits, and whether seven digits stand in one run (separators allowed). Texts
        joined by newlines screen as the union of their parts (no trigger and no run holds
        a newline), so the parts of a mapping are screened once each and, when short and
        ``remember``, remembered (keys and most values repeat from span to span). ``data``:
        the text's UTF-8 bytes when the caller has them (a payload's)."""
        mask = 0
        bits = self._trigger_bits
        low = text.lower() if text.isascii() else text.translate(_FOLD).lower()
        found = self._trigger_re.findall(low)
        for t in found:
            mask |= bits[t]
        if found and not self._overlapping.isdisjoint(found):
            for t in self._trigger_all_re.findall(low):
                mask |= bits[t]
        digits = run = 0
        if self._min_digits:
            if text.isascii():
                # ASCII text: its bytes (``data``, when given, are exactly these) mapped to
                # their shape, one C pass: a digit, a separator of _DIGIT_RUN, or anything
                # else; digits counted there, and seven in one run found with C string
                # operations (_shape_run), not a regex pass (a third of the cost)
                if data is None:
                    data = text.encode("ascii")
                shape = data.translate(_SHAPE)
                digits = shape.count(48)  # b"0"
                run = digits >= 7 and _shape_run(shape)
            else:
                # the rules' \d also matches other scripts' digits (full-width,
                # Arabic-Indic, ...): counted as the rules count them
                digits = len(_ANY_DIGIT.findall(text))
                run = digits >= 7 and _RUN_SCAN.match(text) is not None
        out = (mask, digits, bool(run))
        if remember and len(text) <= _SCREENED_LEN:
            if len(self._screened) >= _SCREENED_TEXTS:
                self._screened.clear()
            self._screened[text] = out
        return out

    def _mask(self, mask: int, digits: int, run: bool) -> int:
        """The rules a screened text may concern (0: none can)."""
        mask |= self._always
        # Digits enough in all, and seven of them in one run (separators allowed).
        if run and self._min_digits and digits >= self._min_digits:
            for n, bit in self._by_digits:
                if digits >= n:
                    mask |= bit
        return mask

    def _candidates(self, text: str) -> int:
        """A bit set of the rules that may apply to ``text`` (0: none can)."""
        return self._mask(*self._screen(text))

    def _mapping_candidates(self, value: dict[str, Any]) -> int:
        """``_candidates`` of ``_joined(value)``, from the screen of each of its parts."""
        return self._mapping_screen(value)[0]

    def _mapping_screen(self, value: dict[str, Any]) -> tuple[int, bool]:
        """``_candidates`` of ``_joined(value)``, from the screen of each of its parts, and
        whether a value holding keys of its own (an object, a list) may hold a secret key:
        its text has a key word, or key patterns or rules of your own are set (they are
        not screened). Such a value is walked, as a payload is: the rules alone do not see
        ``{"credential": "opaque"}``, nor ``{"password": "ab"}`` (too short for
        ``secret_assignment``), while the walk scrubs every value under a secret key."""
        nested: list[str] = []
        if not self._part_screen:
            mask = self._candidates("\n".join(_parts(value, nested)))
            return mask, bool(nested) and (
                not self._json_screened
                or bool(mask & self._key_bit and self._names_secret_key(nested))
            )
        mask = digits = 0
        run = False
        screened = self._screened.get
        parts = _parts(value, nested)
        keys = bool(nested) and not self._json_screened
        inner = {id(p) for p in nested} if nested and not keys else None
        bit = self._key_bit
        for part in parts:
            seen = screened(part)
            m, d, r = seen if seen is not None else self._screen(part, remember=True)
            mask |= m
            digits += d
            run = run or r
            if inner is not None and m & bit and id(part) in inner and not keys:
                keys = self._names_secret_key((part,))
        return self._mask(mask, digits, run), keys

    def _maybe(self, text: str, keys: bool = False, mask: int | None = None) -> bool:
        """Whether any rule finds something in ``text`` (a JSON document, or the values of a
        mapping joined): a screen run once, so that the values inside are walked one by
        one only when something is there. Every match inside one of the values is a match
        in the whole, so nothing is missed. ``mask``: the text's candidates, if known."""
        if mask is None:
            mask = self._candidates(text)
        if not mask:
            return False
        if keys and mask & self._key_bit and self._names_secret_key((text,)):
            return True
        for i, rule in enumerate(self.rules):
            if not mask >> i & 1:
                continue
            validate = rule.detector.validate
            if validate is None:
                if rule.detector.regex.search(text) is not None:
                    return True
            elif any(validate(m.group(0)) for m in rule.detector.regex.finditer(text)):
                return True
        return False

    def _maybe_parts(self, value: dict[str, Any], mask: int) -> bool:
        """``_maybe(_joined(value), mask=mask)``, with the rules that find the same in the
        parts as in the joined text run part by part (their answers for short parts kept)."""
        parts = _parts(value)
        joined: str | None = None
        hits = self._part_hits
        for i in range(len(self.rules)):
            if not mask >> i & 1:
                continue
            if not self._per_part[i]:
                if joined is None:
                    joined = "\n".join(parts)
                if self._maybe(joined, mask=1 << i):
                    return True
                continue
            for part in parts:
                short = len(part) <= _SCREENED_LEN
                hit = hits.get((i, part)) if short else None
                if hit is None:
                    hit = self._maybe(part, mask=1 << i)
                    if short:
                        if len(hits) >= _SCREENED_TEXTS:
                            hits.clear()
                        hits[i, part] = hit
                if hit:
                    return True
        return False

    def text(self, text: str) -> Any:
        """``text`` with every detected secret replaced; ``_DROP`` when a dropping rule hit.
        Short texts that need nothing (step names, models, methods: they repeat) are
        remembered, so the screen runs once for each."""
        if not text:
            return text
        short = len(text) <= _CACHED_LEN
        if short and text in self._clean:
            return text
        out = self._text(text)
        if short and out is text:
            if len(self._clean) >= _CACHED_TEXTS:
                self._clean.clear()
            self._clean.add(text)
        return out

    def _names_secret_key(self, texts: Any) -> bool:
        """Whether a quoted key followed by a colon in one of ``texts`` (a text and what its
        escapes hide) names a secret: a key word alone ("max_tokens") does not walk a JSON
        text."""
        is_secret = self.key_is_secret
        memo = self._key_texts
        for t in texts:
            if '"' not in t and "'" not in t and "=" not in t:
                continue
            short = len(t) <= _KEY_TEXT_LEN
            if short:
                hit = memo.get(t)
                if hit is not None:
                    if hit:
                        return True
                    continue
            hit = False
            for m in _KEY_AT.finditer(t):
                k = m.group(m.lastindex or 0)
                if is_secret(k):
                    hit = True
                    break
                if "\\" in k and m.lastgroup == "k":
                    d = _decoded('"' + k + '"')
                    if d is not None and is_secret(d):
                        hit = True
                        break
            if not hit and ('"' in t or "'" in t):
                hit = any(is_secret(n) for n in _PAIR_AT.findall(t))
            if short:
                if len(memo) >= _KEY_TEXTS:
                    memo.clear()
                memo[t] = hit
            if hit:
                return True
        return False

    def _text(self, text: str, depth: int = 0) -> Any:
        mask = self._candidates(text)
        levels: Any = ()
        if "\\" in text:
            levels = list(_levels(text))  # what escapes hide (JSON inside JSON, \u0070assword)
            for level in levels:
                mask |= self._candidates(level)
        if not self._keys_screened:
            mask |= self._key_bit  # key patterns of your own: not screened
        elif mask & self._key_bit and not self._names_secret_key((text, *levels)):
            mask &= ~self._key_bit
        if not mask:
            return text
        if depth >= _JSON_DEPTH:
            if '\\"' in text:  # JSON nested deeper than walked: withheld whole
                self.counts[KEY_RULE] += 1
                return redacted(KEY_RULE)
        elif _looks_json(text) and _valid_json(text):
            return self._json_text(text, depth)
        elif '"' in text or "'" in text or "=" in text:
            text = self._json_like(text, depth)
        mask &= ~self._key_bit
        if not mask:
            return text
        out = text
        for i, rule in enumerate(self.rules):
            if not mask >> i & 1:
                continue
            regex = rule.detector.regex
            dropped = False

            def replace(m: re.Match[str], rule: Rule = rule) -> str:
                nonlocal dropped
                validate = rule.detector.validate
                if validate is not None and not validate(m.group(0)):
                    return m.group(0)
                has_v = "v" in m.re.groupindex and m.group("v") is not None
                secret = m.group("v") if has_v else m.group(0)
                if secret.startswith("[redacted"):
                    # scrubbed already (by the SDK, before the server sees it): scrubbing
                    # twice changes nothing ("?api_key=[redacted: url_secret]" stays), when
                    # the secret lies inside a whole marker ("[redacted]mysecret" does not)
                    at = m.start("v") if has_v else m.start(0)
                    mark_m = _MARKER.match(m.string, at)
                    if mark_m is not None and mark_m.end() >= at + len(secret):
                        return m.group(0)
                self.counts[rule.name] += 1
                if rule.action == "drop":
                    dropped = True
                    return ""
                mark = redacted(rule.name, self._digest(secret) if rule.action == "hash" else None)
                if not has_v:
                    return mark
                start, end = m.span("v")
                base = m.start(0)
                whole = m.group(0)
                return whole[: start - base] + mark + whole[end - base :]

            out = regex.sub(replace, out)  # one pass: no match returns the text as it was
            if dropped:
                return _DROP
        return out

    def _inner(self, text: str, depth: int) -> Any:
        """A string inside a JSON text, scrubbed one level down (short clean ones remembered)."""
        if len(text) <= _CACHED_LEN and text in self._clean:
            return text
        out = self._text(text, depth + 1)
        if out is text and len(text) <= _CACHED_LEN:
            if len(self._clean) >= _CACHED_TEXTS:
                self._clean.clear()
            self._clean.add(text)
        return out

    def _secret_name_end(self, text: str, at: int, pair: int) -> int:
        """After a name key (``"name":``) at ``at``: where its string ends when it names a
        secret, else ``pair`` as it was."""
        m = _PAIR_VALUE_AT.match(text, at)
        if m is not None and self.key_is_secret(m.group(1)):
            return m.end()
        return pair

    def _pair_member(self, text: str, key: str, key_start: int, pair: int) -> bool:
        """Whether the key at ``key_start`` is the value of a name-value object whose name,
        ending at ``pair``, names a secret: a value key of the same object (no brace
        between)."""
        return (
            pair >= 0
            and key in _PAIR_VALUES
            and text.find("{", pair, key_start) < 0
            and text.find("}", pair, key_start) < 0
        )

    def _secret_member(
        self,
        text: str,
        key_start: int,
        at: int,
        edits: list[tuple[int, int, str]],
        single: bool = False,
    ) -> int:
        """The value at ``at`` under a secret key (whose token starts at ``key_start``)
        scrubbed as ``_secret_value`` does in a structured value: an edit is added; returns
        where the value ends. ``drop`` removes the member and a comma beside it."""
        if text.startswith("[redacted", at):  # a marker left by an earlier scrub
            mark = _MARKER.match(text, at)
            if mark is not None:
                return mark.end()
        end = _value_end(text, at)
        span = text[at:end]
        if not span:
            return end
        single = single or span[0] == "'"
        try:
            value: Any = orjson.loads(span)
        except orjson.JSONDecodeError:
            # cut short, or not JSON: the text as it is (a Python string without its quotes)
            value = span[1:-1] if span[0] == "'" and len(span) > 1 and span[-1] == "'" else span
        if value is None:
            return end
        n = self._secret_value(value)
        if n is value:
            return end
        if n is not _DROP:
            edits.append((at, end, f"'{n}'" if single else _encoded_str(n, span)))
            return end
        after = _after_spaces(text, end)
        if after < len(text) and text[after] == ",":
            edits.append((key_start, _after_spaces(text, after + 1), ""))
            return end
        before = key_start
        while before > 0 and text[before - 1].isspace():
            before -= 1
        done = edits[-1][1] if edits else 0
        if before > 0 and text[before - 1] == "," and before - 1 >= done:
            edits.append((before - 1, end, ""))
        else:
            edits.append((key_start, end, ""))
        return end

    def _json_text(self, text: str, depth: int) -> str:
        """A valid JSON text scrubbed as its parsed value would be (each key and string by
        the rules, one level down; every value under a secret key; integers that are card
        numbers), edited in place: every other byte stays as written, and it stays JSON."""
        edits: list[tuple[int, int, str]] = []
        at = 0
        pair = -1  # where the string of a name that names a secret ended (see _pair_member)
        search = _JSON_TOKENS.search
        while (m := search(text, at)) is not None:
            at = m.end()
            digits = m.group("i")
            if digits is not None:
                number = int(digits)
                n = self.value(number)
                if n is not number:
                    new = redacted("dropped") if n is _DROP else n
                    edits.append((m.start(), m.end(), orjson.dumps(new).decode()))
                continue
            token = m.group("s")
            inner = _decoded(token)
            if inner is None:
                continue
            n = self._inner(inner, depth)
            if n is not inner:
                new = redacted("dropped") if n is _DROP else n
                edits.append((m.start(), m.start() + len(token), _encoded_str(new, token)))
            if m.group("c") is not None:
                if self.key_is_secret(inner) or self._pair_member(text, inner, m.start(), pair):
                    at = self._secret_member(text, m.start(), _after_spaces(text, at), edits)
                    pair = -1
                elif inner in _PAIR_NAMES:
                    pair = self._secret_name_end(text, _after_spaces(text, at), pair)
        return _edited(text, edits)

    def _json_like(self, text: str, depth: int) -> str:
        """Text that is not JSON but may hold some (a message quoting a JSON body, JSON cut
        short): values under quoted secret keys, and quoted strings holding escapes (a JSON
        text inside, a newline before a secret), scrubbed in place; the rules then run on
        the whole text as on any other."""
        edits: list[tuple[int, int, str]] = []
        at = 0
        pair = -1
        search = _KEY_AT.search
        while (m := search(text, at)) is not None:
            at = m.end()
            group = m.lastgroup
            key = _decoded('"' + m.group("k") + '"') if group == "k" else m.group(group or 0)
            if key is None:
                continue
            if self.key_is_secret(key) or self._pair_member(text, key, m.start(), pair):
                at = self._secret_member(text, m.start(), at, edits, group == "q")
                pair = -1
            elif key in _PAIR_NAMES:
                pair = self._secret_name_end(text, at, pair)
        text = _edited(text, edits)
        if "\\" not in text or depth + 1 >= _JSON_DEPTH:
            return text
        edits = []
        for m in _ESCAPED_STR.finditer(text):
            token = m.group()
            inner = _decoded(token)
            if inner is None:
                continue
            n = self._inner(inner, depth)
            if n is not inner:
                new = redacted("dropped") if n is _DROP else n
                edits.append((m.start(), m.end(), _encoded_str(new, token)))
        return _edited(text, edits)

    def _digest(self, secret: str) -> str:
        return hmac.new(self._salt, secret.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[
            :16
        ]

    def key_is_secret(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            hit = self._key_action != "off" and self.config.key_is_secret(key)
            if len(self._key_cache) < 10_000:
                self._key_cache[key] = hit
        return hit

    def _secret_keys(self, value: dict[str, Any]) -> bool:
        """Whether a mapping has a key naming a secret, or both a name and a value key (a
        name-value object, see ``_pair_value``): remembered per set of keys, as the same
        instrumentation sends the same keys."""
        keys = tuple(value)
        hit = self._keys_cache.get(keys)
        if hit is None:
            hit = any(isinstance(k, str) and self.key_is_secret(k) for k in keys) or (
                any(k in value for k in _PAIR_VALUES) and any(k in value for k in _PAIR_NAMES)
            )
            if len(self._keys_cache) >= 4096:
                self._keys_cache.clear()
            self._keys_cache[keys] = hit
        return hit

    def _secret_value(self, value: Any) -> Any:
        """What a value under a secret key becomes (a value already scrubbed, by the SDK
        before the server sees it, stays as it is: scrubbing twice changes nothing)."""
        if type(value) is str and value.startswith("[redacted") and _MARKER.fullmatch(value):
            return value
        if value is True or value is False:
            return value  # one bit ({"pass": true} is a test's result), no secret
        self.counts[KEY_RULE] += 1
        if self._key_action == "drop":
            return _DROP
        if self._key_action == "hash":
            return redacted(KEY_RULE, self._digest(orjson.dumps(value, option=_OPTS).decode()))
        return redacted(KEY_RULE)

    # -- JSON values ----------------------------------------------------------------------
    def value(self, value: Any) -> Any:
        """A JSON value with secrets scrubbed; the same object when nothing changed, and
        ``_DROP`` when the value as a whole is to be discarded."""
        t = type(value)
        if t is str:
            return self.text(value)
        if t is dict:
            return self._dict(value)
        if t is list:
            changed = False
            items: list[Any] = []
            for v in value:
                n = self.value(v)
                if n is not v:
                    changed = True
                    if n is _DROP:
                        n = redacted("dropped")
                items.append(n)
            return items if changed else value
        if t is int:
            # (a negative number is no card number: its text "-4111..." is not one either)
            if self._card and value >= _CARD_INT_MIN:
                from flightlog.privacy.detectors import card_ok

                if card_ok(str(value)):
                    self.counts["card_number"] += 1
                    if self._card_action == "drop":
                        return _DROP
                    digest = self._digest(str(value)) if self._card_action == "hash" else None
                    return redacted("card_number", digest)
            return value
        if value is None or t is float or t is bool:
            return value
        return self._other(value)

    def _other(self, value: Any) -> Any:
        """A value of another type (a str or dict subclass, a tuple, an object): scrubbed
        as the JSON the store writes for it; the same object when nothing changed."""
        if isinstance(value, str):
            plain: Any = str.__str__(value)
        elif isinstance(value, dict):
            plain = dict(value)
        elif isinstance(value, list | tuple):
            plain = list(value)
        elif isinstance(value, int):
            plain = int(value)
        elif isinstance(value, float):
            return value
        else:
            plain = _json.loads(_json.dumpb(value))
        n = self.value(plain)
        return value if n is plain or n == plain else n

    def _pair_value(self, value: dict[str, Any]) -> str | None:
        """The key of the value in a name-value object whose name names a secret
        (``{"name": "Authorization", "value": "Bearer ..."}``: ``"value"``), else None."""
        for vk in _PAIR_VALUES:
            if vk in value:
                break
        else:
            return None
        for nk in _PAIR_NAMES:
            name = value.get(nk)
            if type(name) is str and len(name) <= 128 and self.key_is_secret(name):
                return vk
        return None

    def _dict(self, value: dict[str, Any]) -> Any:
        out: dict[str, Any] | None = None
        pair = self._pair_value(value)
        for k, v in value.items():
            key = k
            string_key = isinstance(k, str)
            if string_key:
                nk = self.text(k if type(k) is str else str.__str__(k))
                if nk != k:
                    key = redacted("dropped") if nk is _DROP else nk
            if v is not None and string_key and (k == pair or self.key_is_secret(k)):
                n = self._secret_value(v)
            else:
                n = self.value(v)
            if n is v and key is k:
                if out is not None:
                    out[key] = v
                continue
            if out is None:
                out = {}
                for k2, v2 in value.items():
                    if k2 is k:
                        break
                    out[k2] = v2
            if n is _DROP:
                continue
            out[key] = n
        return value if out is None else out

    def mapping(self, value: dict[str, Any]) -> dict[str, Any]:
        """Attributes or evidence, scrubbed (the same object when nothing changed)."""
        if not value:
            return value
        try:
            if not self._secret_keys(value):
                mask, nested_keys = self._mapping_screen(value)
                # No rule can match and no value holding keys has a key word (the key words
                # of the mapping's own keys are checked above): nothing to run; else the
                # rules run on the joined text, as always (or on its parts, where that
                # finds the same).
                if not nested_keys and (
                    not mask & ~self._key_bit or not self._maybe_parts(value, mask)
                ):
                    return value
            n = self._dict(value)
        except Exception:
            log.exception("scrubbing a mapping failed; its values are withheld")
            return {k: redacted("error") for k in value}
        return n  # type: ignore[no-any-return]

    def free_text(self, text: str | None) -> str | None:
        """A message, reason or traceback: a dropping rule replaces the whole text."""
        if not text:
            return text
        try:
            n = self.text(text)
        except Exception:
            log.exception("scrubbing a text failed; it is withheld")
            return redacted("error")
        if n is _DROP:
            return redacted("dropped")
        return n  # type: ignore[no-any-return]

    # -- payloads -------------------------------------------------------------------------
    def payload(self, p: Payload) -> Payload:
        """The payload with secrets scrubbed, re-addressed by its new bytes (the same object
        when nothing changed)."""
        data = p.data if type(p.data) is bytes else None
        try:
            text = p.data.decode("utf-8", "replace")
        except Exception:
            text, data = "", None
        if self._json_screened:
            # the escapes inside its strings undone (the digits of the bytes, when nothing
            # was escaped; else of the text: a \uXXXX escape holds more digits than it makes)
            screened = _unescaped(text)
            if screened is not text:
                data = None
            if not self._maybe(
                screened, keys=True, mask=self._mask(*self._screen(screened, data=data))
            ) and not any(
                # JSON texts inside its strings: what their escapes hide, level by level
                self._maybe(level, keys=True)
                for level in (_levels(screened) if "\\" in screened else ())
            ):
                return p
        try:
            value = orjson.loads(p.data)
            n = self.value(value)
            if n is value:
                return p
            if n is _DROP:
                n = redacted("dropped")
            if p.truncated and isinstance(n, dict):
                # The marker's hash is of the full value before scrubbing: not kept.
                n.pop("sha256", None)
            # (a compact copy: orjson's bytes keep its whole output buffer, 4 KB at least)
            data = bytes(memoryview(orjson.dumps(n, option=_OPTS)))
        except Exception:
            log.exception("scrubbing a payload failed; its content is withheld")
            data = orjson.dumps(redacted("error"))
        size = p.size if p.truncated else len(data)
        return Payload(hashlib.sha256(data).hexdigest(), data, size, p.truncated)

    # -- batches --------------------------------------------------------------------------
    def batch(self, batch: Batch) -> Batch:
        """Scrub every record of ``batch`` in place (and return it)."""
        if not self.enabled:
            return batch
        moved: dict[str, str] = {}
        if batch.payloads:
            kept: dict[str, Payload] = {}
            for p in batch.payloads:
                q = self.payload(p)
                if q is not p:
                    moved[p.hash] = q.hash
                kept.setdefault(q.hash, q)
            batch.payloads = list(kept.values())
        ft = self.free_text
        clean = self._clean  # short texts known to need nothing (``text``)
        for r in batch.runs:
            if moved:
                r.input_hash = moved.get(r.input_hash, r.input_hash) if r.input_hash else None
                r.output_hash = moved.get(r.output_hash, r.output_hash) if r.output_hash else None
            r.workflow = ft(r.workflow) or r.workflow
            # names and labels (they repeat: a known clean one costs a set lookup, no call)
            if r.service is not None and r.service not in clean:
                r.service = ft(r.service)
            if r.version is not None and r.version not in clean:
                r.version = ft(r.version)
            if r.owner is not None and r.owner not in clean:
                r.owner = ft(r.owner)
            r.reason = ft(r.reason)
            r.error = self._error(r.error)
            r.attributes = self.mapping(r.attributes)
        for s in batch.steps:
            if moved:
                s.input_hash = moved.get(s.input_hash, s.input_hash) if s.input_hash else None
                s.output_hash = moved.get(s.output_hash, s.output_hash) if s.output_hash else None
            s.name = ft(s.name) or s.name
            if s.kind not in clean:
                s.kind = ft(s.kind) or s.kind
            if s.agent is not None and s.agent not in clean:
                s.agent = ft(s.agent)
            if s.owner is not None and s.owner not in clean:
                s.owner = ft(s.owner)
            if s.model is not None and s.model not in clean:
                s.model = ft(s.model)
            if s.provider is not None and s.provider not in clean:
                s.provider = ft(s.provider)
            if s.error is not None:
                s.error = self._error(s.error)
            s.attributes = self.mapping(s.attributes)
        for i, edge in enumerate(batch.edges):
            if edge.detail is not None and edge.detail not in clean:
                detail = ft(edge.detail)
                if detail != edge.detail:  # (an edge is frozen: replaced)
                    batch.edges[i] = dataclasses.replace(edge, detail=detail)
        for f in batch.findings:
            f.message = ft(f.message) or ""
            f.evidence = self.mapping(f.evidence)
        return batch

    def _error(self, e: ErrorInfo | None) -> ErrorInfo | None:
        if e is None:
            return None
        e.type = self.free_text(e.type) or e.type
        e.message = self.free_text(e.message) or ""
        e.traceback = self.free_text(e.traceback)
        return e
