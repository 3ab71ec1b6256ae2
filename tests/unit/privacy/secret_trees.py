"""Hypothesis strategies for nested captured values with secrets at any depth, and the
reference the scrubber must agree with.

A *tree* is a mapping (attributes, evidence) or any JSON value (a payload) whose leaves are
harmless texts and numbers, secrets by pattern (provider keys, tokens, e-mail addresses,
phone and card numbers, IBANs, ...) placed after a newline, a tab, a quote or nothing, and
whose keys are harmless or name a secret (``password``, ``API_KEY``, ``x-api-key``,
``http.request.header.authorization``, ``sessionToken`` ...) in different cases and with
different separators; lists, objects and JSON texts of objects (JSON inside strings, inside
JSON ...) nest at any depth.

``draw_tree`` also returns what it planted: the opaque values put under secret keys and the
secrets by pattern, so that a test can look for them in what was stored.

``reference(scrubber)`` is a scrubber that screens nothing: every rule runs on every key and
text, and every mapping and payload is walked. What it scrubs is what the rules scrub; the
real scrubber's screens (trigger words, digit runs, per-text caches, remembered key sets, the
joined or part-by-part mapping screen, the payload's JSON-text screen) only save work and must
give the same result.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from flightlog.privacy import Scrubber
from flightlog.privacy.scrub import _DROP

ALNUM = string.ascii_letters + string.digits

# Words that name a secret key (flightlog.privacy.detectors.KEY_PATTERN), written as
# lower-case words joined by "_".
SECRET_KEY_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "access_key",
    "access_token",
    "auth_token",
    "refresh_token",
    "id_token",
    "session_token",
    "bearer",
    "authorization",
    "cookie",
    "set_cookie",
    "credential",
    "credentials",
    "private_key",
    "signing_key",
    "token",
    "pwd",
    "pass",
    "db_pass",
    "pin",
    "card_pin",
    "pin_code",
    "passcode",
    "cvv",
    "auth",
    "secret_key",
    "aws_secret_access_key",
    "encryption_key",
    "master_key",
    "subscription_key",
)
PLAIN_KEYS = (
    "name",
    "model",
    "role",
    "content",
    "url",
    "headers",
    "messages",
    "args",
    "max_tokens",
    "llm.token_count.prompt",
    "input.value",
    "passage",
    "secretary",
    "key",
    "cache_key",
    "idempotency_key",
    "spin",
    "pinned",
    "author",
    "compass",
    "passed",
    "keyword",
    "0",
    "x",
    "",
)
KEY_PREFIXES = ("", "", "x-", "my_", "http.request.header.", "llm.0.", "aida")


def _case(words: list[str], style: str) -> str:
    if style == "snake":
        return "_".join(words)
    if style == "kebab":
        return "-".join(words)
    if style == "dotted":
        return ".".join(words)
    if style == "upper":
        return "_".join(words).upper()
    if style == "train":
        return "-".join(w.capitalize() for w in words)
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == "pascal":
        return "".join(w.capitalize() for w in words)
    return "".join(words)  # joined


CASES = ("snake", "kebab", "dotted", "upper", "train", "camel", "pascal", "joined")


@st.composite
def secret_keys(draw: Any) -> str:
    words = draw(st.sampled_from(SECRET_KEY_WORDS)).split("_")
    return draw(st.sampled_from(KEY_PREFIXES)) + _case(words, draw(st.sampled_from(CASES)))


def keys() -> st.SearchStrategy[str]:
    return st.one_of(
        secret_keys(),
        st.sampled_from(PLAIN_KEYS),
        st.text(alphabet=ALNUM + "._- ", max_size=6),
    )


def _tok(draw: Any, n: int, alphabet: str = ALNUM) -> str:
    return draw(st.text(alphabet=alphabet, min_size=n, max_size=n))


def _luhn(draw: Any) -> str:
    digits = [4] + [draw(st.integers(0, 9)) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


@st.composite
def pattern_secrets(draw: Any) -> str:
    """A secret that a rule finds by its shape, freshly made."""
    kind = draw(st.integers(0, 17))
    up = string.ascii_uppercase + string.digits
    if kind == 0:
        return "sk-proj-" + _tok(draw, 32)
    if kind == 1:
        return "sk-ant-api03-" + _tok(draw, 32)
    if kind == 2:
        return "AKIA" + _tok(draw, 16, up)
    if kind == 3:
        return "ghp_" + _tok(draw, 36)
    if kind == 4:
        return "AIza" + _tok(draw, 35)
    if kind == 5:
        return "xoxb-" + _tok(draw, 10, string.digits) + "-" + _tok(draw, 24)
    if kind == 6:
        return "sk_live_" + _tok(draw, 24)
    if kind == 7:
        return f"eyJ{_tok(draw, 12)}.eyJ{_tok(draw, 16)}.{_tok(draw, 16)}"
    if kind == 8:
        return f"zed.{_tok(draw, 8, string.ascii_lowercase)}@example.org"
    if kind == 9:
        return "+44 20 7946 " + _tok(draw, 4, string.digits)
    if kind == 10:
        return "415-555-" + _tok(draw, 4, string.digits)
    if kind == 11:
        card = _luhn(draw)
        if draw(st.booleans()):
            card = " ".join(card[i : i + 4] for i in range(0, 16, 4))
        return card
    if kind == 12:
        return draw(st.sampled_from(["DE89370400440532013000", "GB82WEST12345698765432"]))
    if kind == 13:
        return f"{draw(st.integers(100, 665))}-{draw(st.integers(10, 99))}-" + _tok(
            draw, 4, "123456789"
        )
    if kind == 14:
        return "Bearer " + _tok(draw, 24)
    if kind == 15:
        return f"https://svc:pw{_tok(draw, 12)}@api.example.com/v1"
    if kind == 16:
        return f"https://api.example.com/v1?api_key=k{_tok(draw, 16)}"
    return f"password={_tok(draw, 12)}"


# What may stand right before and after a secret in a text (a secret must stay a secret
# to the rules on its own text: no letter or digit glued to it).
BEFORE = ("", " ", "\n", "\t", "\r\n", "note:\n", "key: ", '"', "(", "line one\nline two ")
AFTER = ("", " ", "\n", "\t", "\r\n", '"', ")", " end", "\nmore")
HARMLESS = ("ok", "hello world", "gpt-4o", "user", "line one\nline two", "a\\nb", "42", "")


@dataclass
class Planted:
    """What a tree holds that must not be stored as it is."""

    by_key: list[str] = field(default_factory=list)  # opaque values under secret keys
    by_pattern: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return self.by_key + self.by_pattern


def _leaf(draw: Any, planted: Planted) -> Any:
    pick = draw(st.integers(0, 9))
    if pick <= 2:
        secret = draw(pattern_secrets())
        planted.by_pattern.append(secret)
        return draw(st.sampled_from(BEFORE)) + secret + draw(st.sampled_from(AFTER))
    if pick <= 5:
        return draw(st.sampled_from(HARMLESS))
    if pick == 6:
        return draw(st.text(max_size=6))
    if pick == 7:
        return draw(st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False)))
    if pick == 8:
        card = int(_luhn(draw))  # a card number as a JSON integer
        return -card if draw(st.integers(0, 3)) == 0 else card
    return draw(st.sampled_from([None, True, False, 0, 7]))


def _opaque(draw: Any, planted: Planted) -> Any:
    """A value under a secret key: opaque to every rule (or short, or not a text)."""
    pick = draw(st.integers(0, 5))
    if pick <= 2:
        value = "Zq" + _tok(draw, 10)
        planted.by_key.append(value)
        return value
    if pick == 3:
        return draw(st.sampled_from(["ab", "x", "", "[redacted: credential]"]))
    if pick == 4:
        value = "Zq" + _tok(draw, 10)
        planted.by_key.append(value)
        return [value, 3]
    return draw(st.integers(-1000, 1000))


def _value(draw: Any, planted: Planted, depth: int) -> Any:
    if depth >= 3:
        return _leaf(draw, planted)
    pick = draw(st.integers(0, 9))
    if pick <= 4:
        return _leaf(draw, planted)
    if pick <= 6:
        return [_value(draw, planted, depth + 1) for _ in range(draw(st.integers(0, 3)))]
    if pick <= 8:
        return _object(draw, planted, depth + 1)
    # a JSON text of an object (tool arguments, a serialised message): its keys are keys as
    # in a structured value, its strings texts (what is planted in it must go too); or the
    # object's Python repr (framework traces record reprs: {'api_key': '...'})
    inner = _object(draw, planted, depth + 1)
    if draw(st.integers(0, 3)) == 0:
        return repr(inner)
    return json.dumps(inner, ensure_ascii=draw(st.booleans()))


def _object(draw: Any, planted: Planted, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.integers(0, 7)) == 0:
        # a name and a value (HTTP headers, environment variables, OTLP key-values): the
        # value is a secret when the name names one
        name = draw(st.one_of(secret_keys(), st.sampled_from(PLAIN_KEYS)))
        return {draw(st.sampled_from(("name", "key", "header"))): name,
                "value": _opaque(draw, planted)}  # fmt: skip
    for _ in range(draw(st.integers(0, 4))):
        key = draw(keys())
        if key in out:
            continue
        secret_key = draw(st.integers(0, 2)) == 0
        if secret_key:
            key = draw(secret_keys())
            if key in out:
                continue
            out[key] = (
                _opaque(draw, planted) if draw(st.booleans()) else _value(draw, planted, depth + 1)
            )
        else:
            out[key] = _value(draw, planted, depth)
    return out


@st.composite
def mappings(draw: Any) -> tuple[dict[str, Any], Planted]:
    """(attributes, what was planted in them)."""
    planted = Planted()
    out = _object(draw, planted, 0)
    if not out:
        out = {draw(keys()): _leaf(draw, planted)}
    return out, planted


@st.composite
def json_values(draw: Any) -> tuple[Any, Planted]:
    """(a payload's value, what was planted in it)."""
    planted = Planted()
    if draw(st.booleans()):
        return _object(draw, planted, 0), planted
    return _value(draw, planted, 0), planted


def harmless_twin(value: Any) -> Any:
    """The same keys and shape with harmless values: seen first, it warms every cache (the
    key sets, the screens of the keys) before the secrets come."""
    if isinstance(value, dict):
        return {k: harmless_twin(v) for k, v in value.items()}
    if isinstance(value, list):
        return [harmless_twin(v) for v in value]
    if isinstance(value, str):
        return "ok"
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return 1
    return 0.5


class Reference(Scrubber):
    """Every rule on every text, every mapping and payload walked: no screen at all."""

    def _candidates(self, text: str) -> int:
        return (1 << len(self.rules)) - 1

    def text(self, text: str) -> Any:
        return self._text(text) if text else text

    def mapping(self, value: dict[str, Any]) -> dict[str, Any]:
        return self._dict(value) if value else value  # type: ignore[no-any-return]

    def json(self, value: Any) -> Any:
        n = self.value(value)
        return "[redacted: dropped]" if n is _DROP else n


def reference(scrubber: Scrubber) -> Reference:
    return Reference(scrubber.config)
