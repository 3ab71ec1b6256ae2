"""Built-in detectors of secrets and personal data in captured text.

A ``Detector`` is a name, a regular expression and an optional validator. When the pattern
has a group named ``v``, only that group is the secret (``Bearer <v>``, ``pass`` in
``https://user:pass@host``); otherwise the whole match is. A validator rejects matches that
only look right: card numbers must pass the Luhn check and start like a card network's
numbers, IBANs must have their country's length and pass the ISO 13616 mod-97 check, phone
numbers must have 7 to 15 digits (ITU-T E.164). Digits are those of any script (the rules'
``\\d``: full-width, Arabic-Indic ...), read as ASCII digits by the validators.

Detectors are ordered: credentials in URLs before e-mail addresses (``user:pw@host.com``
would otherwise read as an address), provider keys before the generic assignment rule.

Attribute and JSON keys are judged by name as well (``KEY_PATTERN``): whatever the value
under ``authorization``, ``password``, ``api_key``, ``secret``, ``cookie`` ... it is scrubbed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

Validator = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Detector:
    """One rule over text: ``name`` labels what it finds (``[redacted: NAME]``)."""

    name: str
    regex: re.Pattern[str]
    validate: Validator | None = None
    description: str = ""
    # A cheap screen, decided before the regular expression runs: the rule applies only to
    # texts that contain (lower-cased) one of ``triggers`` and at least ``min_digits``
    # digits. Rules without triggers (your own patterns) run on every text.
    triggers: tuple[str, ...] = ()
    min_digits: int = 0


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of ISO/IEC 7812-1 over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Issuer prefixes of the card networks (ISO/IEC 7812 IINs): a Luhn-valid digit run that starts
# otherwise (a nanosecond timestamp starts with 1) is not taken for a card number.
_CARD_PREFIX = re.compile(
    r"^(?:4\d{12}(?:\d{3}){0,2}"  # Visa 13, 16, 19
    r"|5[1-5]\d{14}|2(?:2[2-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}"  # Mastercard
    r"|3[47]\d{13}"  # American Express
    r"|6(?:011|5\d\d|4[4-9]\d)\d{12,15}"  # Discover
    r"|35(?:2[89]|[3-8]\d)\d{12,15}"  # JCB
    r"|3(?:0[0-5]|[68]\d)\d{11,16}"  # Diners Club
    r"|62\d{14,17})$"  # UnionPay
)


# Separators between the groups of a card number, IBAN or SSN, as typed or pasted: spaces
# (no-break, figure, narrow no-break, ideographic) and hyphens (Unicode hyphens, en dash,
# minus, full-width hyphen-minus). Inside a regex character class.
SPACE_SEPS = " \u00a0\u2007\u202f\u3000"
DASH_SEPS = "\\-\u2010\u2011\u2012\u2013\u2212\uff0d"
_SEPS = SPACE_SEPS + DASH_SEPS
# Full-width Latin letters (U+FF21-FF3A, U+FF41-FF5A) as ASCII ones.
_FULLWIDTH_UPPER = {c: c - 0xFEE0 for c in (*range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B))}


def ascii_digits(text: str) -> str:
    """``text`` with digits of every script (what the rules' ``\\d`` matches: full-width,
    Arabic-Indic, Devanagari ...) as ASCII digits, full-width letters as ASCII ones, and the
    group separators above removed."""
    if text.isascii():
        return text.replace(" ", "").replace("-", "")
    out = []
    for c in text.translate(_FULLWIDTH_UPPER):
        d = unicodedata.decimal(c, None)
        if d is not None:
            out.append(chr(48 + d))
        elif c not in _SEP_CHARS:
            out.append(c)
    return "".join(out)


def card_ok(text: str) -> bool:
    digits = ascii_digits(text).replace(".", "").replace("/", "")
    return (
        13 <= len(digits) <= 19
        and digits.isdigit()
        and bool(_CARD_PREFIX.match(digits))
        and luhn_ok(digits)
    )


# IBAN lengths per country (ISO 13616 registry, SWIFT IBAN Registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_ok(text: str) -> bool:
    """Country length and the ISO 7064 mod 97-10 check (the remainder must be 1)."""
    s = ascii_digits(text).upper()
    if not s.isascii() or not s.isalnum():
        return False
    if IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    moved = s[4:] + s[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def phone_ok(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    return 7 <= digits <= 15


def _c(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


# Names of URL query parameters that hold a secret (and, as the last word of a longer name,
# x_api_key, oauth_token).
_QUERY_SECRET = (
    r"api[_\-]?key|apikey|access[_\-]?token|auth[_\-]?token|token|refresh[_\-]?token|"
    r"id[_\-]?token|client[_\-]?secret|secret|password|passwd|pwd|pass|passcode|pin|auth|"
    r"credentials?|jwt|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|"
    r"session[_\-]?id"
)
# Right after the first letter of a word: that letter is not inside a word written in one
# case ("compass", "SPIN"): it starts the text, follows a non-letter, or starts a camelCase
# word ("dbPass", "userPIN").
_WORD_START = r"(?<!(?-i:[a-z][a-z]|[A-Z][A-Z]))"
# Between the words of an obfuscated address: "[at]", "(at)", " at " in brackets.
_AT = r"\s?[\[({]at[\])}]\s?"
_DOT = r"\s?[\[({]dot[\])}]\s?"
# Between the groups of an international phone number: spaces of any kind, dots, hyphens.
_PSEP = f"[.{SPACE_SEPS}{DASH_SEPS}]"
_SEP_CHARS = frozenset(re.sub(r"\\(.)", r"\1", _SEPS))
_I = re.IGNORECASE
# A value that starts with (or holds) bracketed text: a marker-like prefix ("[redacted]x",
# "[x]secret") is part of the value, not its end; a whole marker left by an earlier scrub
# is recognised as such when the match is replaced (``scrub._MARKER``).
_BRACKETED = r'\[[^\[\]\n"]{0,64}+\]'

# What ``\s`` matches in a text (str.isspace; none above U+3000): "Token" then any of them
# starts a credential, so each is a trigger of the authorization rule.
SPACES = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
# Characters of tokens and keys (base64url, base64, hex and the like).
_TOK = r"[A-Za-z0-9_\-]"

BUILTIN: tuple[Detector, ...] = (
    Detector(
        "private_key",
        _c(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
            r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)"
        ),
        description="PEM private key blocks",
        triggers=("-----begin",),
    ),
    Detector(
        "url_credentials",
        _c(r"://[^\s/:@\"'<>]*:(?P<v>[^\s/@\"'<>]+)@"),
        description="the password in scheme://user:password@host",
        triggers=("://",),
    ),
    Detector(
        "url_secret",
        _c(
            # A parameter named by a secret word, alone or as the last word of its name
            # (x_api_key, oauth_token, private_token), with the delimiters as typed or
            # percent-encoded (%3F, %26, %3D: a URL inside a URL's query).
            rf"(?:[?&;#]|%3F|%26)(?:[a-z0-9]+[_\-.])*+(?:{_QUERY_SECRET}|key|code)"
            r"(?:=|%3D)(?P<v>[^&#\s\"'<>]+)",
            _I,
        ),
        description="secrets in URL query parameters (?api_key=, &token=, &sig= ...)",
        triggers=("=", "%3d"),
    ),
    Detector(
        "anthropic_key",
        _c(rf"\bsk-ant-(?:api|admin|oat|ort)\d\d-{_TOK}{{20,}}"),
        description="Anthropic API keys (sk-ant-...)",
        triggers=("sk-ant-",),
    ),
    Detector(
        "openai_key",
        _c(rf"\bsk-(?:proj-|svcacct-|admin-|None-)?{_TOK}{{20,}}"),
        description="OpenAI API keys (sk-, sk-proj-, sk-svcacct-)",
        triggers=("sk-",),
    ),
    Detector(
        "aws_access_key",
        _c(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b"),
        description="AWS access key ids",
        triggers=(
            "akia",
            "asia",
            "abia",
            "acca",
            "agpa",
            "aida",
            "aroa",
            "aipa",
            "anpa",
            "anva",
            "apka",
        ),
    ),
    Detector(
        "github_token",
        _c(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
        description="GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)",
        triggers=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    Detector(
        "service_token",
        _c(
            r"\b(?:glpat-[A-Za-z0-9_\-]{20,}|hf_[A-Za-z]{30,}|npm_[A-Za-z0-9]{36}"
            r"|pypi-AgE[A-Za-z0-9_\-]{50,}|gsk_[A-Za-z0-9]{40,}|xai-[A-Za-z0-9]{40,}"
            r"|dop_v1_[a-f0-9]{64}|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"
            r"|SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})"
        ),
        description="other services' tokens (GitLab glpat-, Hugging Face hf_, npm_, pypi-, "
        "Groq gsk_, xAI xai-, DigitalOcean dop_v1_, Shopify shpat_, SendGrid SG.)",
        triggers=("glpat-", "hf_", "npm_", "pypi-", "gsk_", "xai-", "dop_v1_", "shp", "sg."),
    ),
    Detector(
        "google_api_key",
        _c(r"\b(?:AIza[0-9A-Za-z_\-]{35}|ya29\.[0-9A-Za-z_\-]{20,})"),
        description="Google API keys (AIza...) and OAuth access tokens (ya29.)",
        triggers=("aiza", "ya29."),
    ),
    Detector(
        "slack_token",
        _c(
            r"\bxox[abposre]-[A-Za-z0-9\-]{10,}"
            r"|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]+"
        ),
        description="Slack tokens (xoxb-, xoxp- ...) and incoming-webhook URLs",
        triggers=("xox", "hooks.slack.com"),
    ),
    Detector(
        "stripe_key",
        _c(r"\b(?:sk|rk|pk|whsec)_(?:live|test)_[A-Za-z0-9]{16,}"),
        description="Stripe keys (sk_live_, rk_live_, whsec_ ...)",
        triggers=("_live_", "_test_"),
    ),
    Detector(
        "jwt",
        # (no word boundary before: a JWT glued to what precedes it, "Bearer%20eyJ...",
        # "_eyJ...", is one still)
        _c(r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"),
        description="JSON Web Tokens",
        triggers=("eyj",),
    ),
    Detector(
        "authorization",
        _c(
            r"\b(?:Bearer|Basic|Digest|Token|ApiKey|Negotiate)(?:\s+|%20)"
            rf"(?P<v>(?:{_BRACKETED})*+[A-Za-z0-9._~+/=\-]{{6,}})",
            _I,
        ),
        description="credentials after an HTTP authentication scheme (Bearer, Basic ...)",
        triggers=("bearer", "basic", "digest", "apikey", "negotiate")
        + tuple(f"token{c}" for c in SPACES),
    ),
    Detector(
        "secret_assignment",
        _c(
            # short words (pass, pin, pwd) only as a word of their own: "compass: north",
            # "spin=3" are no secrets, "db_pass=", "userPin:" are
            # (the word's first letter and the one before it not of the same case: the
            # check stands after that letter, so that every branch starts with a literal
            # and the engine skips the positions where none can start)
            rf"(?:p{_WORD_START}(?:asscode|ass|in|wd)"
            r"|password|passwd|passphrase|secret|api[_\-]?key|apikey|access[_\-]?(?:token|key)|"
            r"auth[_\-]?token|refresh[_\-]?token|session[_\-]?token|client[_\-]?secret|"
            r"private[_\-]?key|authorization|x-api-key|cookie|credentials?)"
            # then a word that keeps it a secret ("aws_secret_access_key", "pin_code")
            r"(?:[_\-.](?:access[_\-]?key|key|token|code|number|value|word))?"
            r"\"?'?\s*(?:[:=]|%3D)\s*\"?'?"
            r"(?!(?:Bearer|Basic|Digest|Token|ApiKey|Negotiate)\s)(?=[^\s\"',;&}]{3})"
            rf"(?P<v>(?:{_BRACKETED}|\[|[^\s\"',;&}}\]\[])++)",
            _I,
        ),
        description='values written as password=..., "api_key": "...", cookie: ...',
        triggers=(
            "pass",
            "pwd",
            "secret",
            "api_key",
            "api-key",
            "apikey",
            "accesstoken",
            "access_token",
            "access-token",
            "authtoken",
            "auth_token",
            "auth-token",
            "refreshtoken",
            "refresh_token",
            "refresh-token",
            "private_key",
            "private-key",
            "privatekey",
            "authorization",
            "cookie",
            "pin",
            "credential",
            "session",
        ),
    ),
    Detector(
        "url_secret",  # (one rule with the url_secret above: on or off, its action)
        # A query string on its own (OpenTelemetry's url.query: "token=...&x=1"): its first
        # parameter, at the start of the text (the others follow a "&": the url_secret
        # above). Apart from that one, whose every branch starts with a character the
        # engine can skip to; anchored, this one is tried at one position only. After
        # secret_assignment, which names what it finds first. Not "key" or "code" alone
        # here: "key=user:42" starting a log line is a cache key.
        _c(rf"\A(?:[a-z0-9]+[_\-.])*+(?:{_QUERY_SECRET})(?:=|%3D)(?P<v>[^&#\s\"'<>]+)", _I),
        description="secrets in a query string on its own (token=...&x=1)",
        triggers=("=", "%3d"),
    ),
    Detector(
        "email",
        # Letters of any script (RFC 6531 addresses, IDN domains), the full-width @ and .,
        # a percent-encoded @ (%40, in URLs) and the obfuscations a reader still reads as
        # an address: "name [at] example [dot] com", "name(at)example.com".
        _c(
            rf"(?<![\w.+\-])[\w.+\-]++(?:@|＠|%40|{_AT})"
            rf"[^\W_](?:[\w\-]*[^\W_])?(?:(?:\.|．|{_DOT})[\w\-]+)*(?:\.|．|{_DOT})[^\W\d_]{{2,}}\b",
            _I,
        ),
        description="e-mail addresses",
        triggers=("@", "＠", "%40", "at]", "at)", "at}"),
    ),
    Detector(
        "iban",
        _c(
            rf"\b[A-ZＡ-Ｚ]{{2}}\d{{2}}(?:[{SPACE_SEPS}]?[A-ZＡ-Ｚ\d]){{11,30}}\b"
            # lower case only as typed by a person, in groups of four
            rf"|\b[a-zａ-ｚ]{{2}}\d{{2}}(?:[{SPACE_SEPS}][a-zａ-ｚ\d]{{4}}){{2,7}}"
            rf"(?:[{SPACE_SEPS}][a-zａ-ｚ\d]{{1,3}})?\b"
        ),
        iban_ok,
        description="IBANs (country length and mod-97 checked)",
        min_digits=9,
    ),
    Detector(
        "card_number",
        _c(
            # (every branch starts with a digit, the checks of what precedes it after that
            # digit: the engine then skips to the digits of a text)
            rf"\d(?:(?<![\d{DASH_SEPS}]\d)(?:[{_SEPS}]?\d){{12,18}}(?![\d{DASH_SEPS}])"
            # groups split by dots or slashes, the same between every group
            r"|(?<![\d./]\d)\d{3}(?P<s>[./])(?:\d{4}(?P=s)\d{4}(?P=s)\d{4}(?:(?P=s)?\d{1,3})?"
            r"|\d{6}(?P=s)\d{5})(?![\d./]))"
        ),
        card_ok,
        description="payment card numbers (network prefix and Luhn checked)",
        min_digits=13,
    ),
    Detector(
        "us_ssn",
        _c(
            # (starting with the area's three digits, the checks of what precedes them after
            # them: the engine then skips to the digits of a text)
            r"\d\d\d(?<!000|666)(?<!9\d\d)"
            rf"(?:(?<!\w\d\d\d)[{DASH_SEPS}](?!00)\d{{2}}[{DASH_SEPS}](?!0000)\d{{4}}\b"
            # spaced: not inside a longer run of spaced digit groups
            rf"|(?<![\d{DASH_SEPS}]\d\d\d)(?<!\d[{SPACE_SEPS}]\d\d\d)"
            rf"(?P<s>[{SPACE_SEPS}])(?!00)\d{{2}}(?P=s)(?!0000)\d{{4}}"
            rf"(?![\d{DASH_SEPS}])(?![{SPACE_SEPS}]\d))"
        ),
        description="US social security numbers (ddd-dd-dddd, ddd dd dddd)",
        min_digits=9,
    ),
    Detector(
        "phone",
        _c(
            # (every branch starts with the character it needs, the checks of what precedes
            # it after that: the engine then skips to those characters)
            rf"[+＋](?<![\w+＋][+＋])\d{{1,3}}{_PSEP}?(?:\(\d{{1,4}}\){_PSEP}?)?\d{{1,4}}"
            rf"(?:{_PSEP}?\d{{2,4}}){{1,4}}(?!\w)"
            r"|\((?<![\w\-]\()\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}(?![\w\-])"
            r"|\d(?<![\w\-.]\d)\d\d[.\-]\d{3}[.\-]\d{4}(?![\w\-.])"
        ),
        phone_ok,
        description="phone numbers (+international, (555) 123-4567, 555-123-4567)",
        min_digits=7,
    ),
)

BUILTIN_NAMES: tuple[str, ...] = tuple(dict.fromkeys(d.name for d in BUILTIN))

# Attribute and JSON-object keys whose value is a secret whatever it looks like. Matched
# against the key as ``key_words`` writes it: lower case, camelCase words, "-" and spaces
# as "_" (``dbPass`` -> ``db_pass``, ``X-Api-Key`` -> ``x_api_key``).
#
# Long words name a secret wherever they stand (``password``, ``secret``, ``cookie``,
# ``credential`` ...). Short ones only as the key's last word: ``pass``, ``pin``, ``pwd``,
# ``cvv``/``cvc``, ``auth``, ``token`` (``db_pass``, ``card.pin``, ``userPin``,
# ``x-auth``; not ``passage``, ``spin``, ``pinned``, ``author``, ``max_tokens``). ``key`` names
# a secret only with a word saying what it unlocks (``api_key``, ``access_key``,
# ``private_key``, ``signing_key``, ``encryption_key``, ``master_key``, ``subscription_key``,
# ``secret_key``): alone, or after ``cache``, ``idempotency``, ``partition``, ``sort``,
# ``s3`` ..., a key is an identifier that traces carry everywhere, and its value is judged
# by the rules like any other text.
KEY_PATTERN = (
    r"password|passwd|passphrase|passcode|secret|api_?key|access_?key|access_?token|"
    r"auth_?token|refresh_?token|id_?token|session_?token|bearer|authorization|cookie|"
    r"credential|private_?key|signing_?key|encryption_?key|master_?key|subscription_?key|"
    r"(?:^|[._])(?:token|pwd|pass|pin|pin_?code|cvv|cvc|cvv2|auth)$"
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def key_words(key: str) -> str:
    """A key as ``KEY_PATTERN`` reads it: camelCase words split, lower case, ``-`` and
    spaces as ``_``."""
    if not key.islower():
        key = _CAMEL.sub("_", key)
    return key.lower().replace("-", "_").replace(" ", "_")
