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

import hashlib
import hmac
import logging
import re
from collections import Counter
from typing import Any

import orjson

from flightlog.model import Batch, ErrorInfo, Payload
from flightlog.privacy.config import KEY_RULE, PrivacyConfig, Rule

log = logging.getLogger("flightlog.privacy")

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_DROP = object()  # a sentinel: discard the value that holds the match
_NAMED = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")
# Words that may name a secret key inside JSON text (a screen, not the rule itself).
_KEY_SCREEN = (
    r"(?i:password|passwd|passphrase|secret|api.?key|access.?key|token|bearer|authoriz|"
    r"cookie|credential|private.?key|signing.?key|pwd)"
)
_CARD_INT_MIN = 10**12  # integers of 13 digits or more may be card numbers


def redacted(name: str, digest: str | None = None) -> str:
    """How a scrubbed value is shown: ``[redacted: email]`` or ``[redacted: email #1a2b...]``."""
    return f"[redacted: {name} #{digest}]" if digest else f"[redacted: {name}]"


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
        screens = [
            _NAMED.sub("(?:", r.detector.regex.pattern)
            if not r.detector.regex.flags & re.IGNORECASE
            else "(?i:" + _NAMED.sub("(?:", r.detector.regex.pattern) + ")"
            for r in self.rules
        ]
        self._screen: re.Pattern[str] | None
        try:
            self._screen = re.compile("|".join(f"(?:{s})" for s in screens) or r"(?!)")
        except re.error:  # a custom pattern with global flags: screen rule by rule
            self._screen = None
        try:
            self._json_screen: re.Pattern[str] | None = re.compile(
                "|".join([f"(?:{s})" for s in screens] + [_KEY_SCREEN])
            )
        except re.error:
            self._json_screen = None

    # -- text -----------------------------------------------------------------------------
    def _matches(self, text: str, screen: re.Pattern[str] | None) -> bool:
        if screen is not None:
            return screen.search(text) is not None
        return True

    def text(self, text: str) -> Any:
        """``text`` with every detected secret replaced; ``_DROP`` when a dropping rule hit."""
        if not text or not self._matches(text, self._screen):
            return text
        out = text
        for rule in self.rules:
            regex = rule.detector.regex
            if regex.search(out) is None:
                continue
            dropped = False

            def replace(m: re.Match[str], rule: Rule = rule) -> str:
                nonlocal dropped
                validate = rule.detector.validate
                if validate is not None and not validate(m.group(0)):
                    return m.group(0)
                has_v = "v" in m.re.groupindex and m.group("v") is not None
                secret = m.group("v") if has_v else m.group(0)
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

            out = regex.sub(replace, out)
            if dropped:
                return _DROP
        return out

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

    def _secret_value(self, value: Any) -> Any:
        """What a value under a secret key becomes."""
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
        if t is int and self._card and abs(value) >= _CARD_INT_MIN:
            from flightlog.privacy.detectors import card_ok

            if card_ok(str(value)):
                self.counts["card_number"] += 1
                if self._card_action == "drop":
                    return _DROP
                digest = self._digest(str(value)) if self._card_action == "hash" else None
                return redacted("card_number", digest)
        return value

    def _dict(self, value: dict[str, Any]) -> Any:
        out: dict[str, Any] | None = None
        for k, v in value.items():
            key = k
            if type(k) is str:
                nk = self.text(k)
                if nk is not k:
                    key = redacted("dropped") if nk is _DROP else nk
            if v is not None and type(k) is str and self.key_is_secret(k):
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
        try:
            text = p.data.decode("utf-8", "replace")
        except Exception:
            text = ""
        if self._json_screen is not None and self._json_screen.search(text) is None:
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
            data = orjson.dumps(n, option=_OPTS)
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
        for r in batch.runs:
            if moved:
                r.input_hash = moved.get(r.input_hash, r.input_hash) if r.input_hash else None
                r.output_hash = moved.get(r.output_hash, r.output_hash) if r.output_hash else None
            r.workflow = ft(r.workflow) or r.workflow
            r.reason = ft(r.reason)
            r.error = self._error(r.error)
            r.attributes = self.mapping(r.attributes)
        for s in batch.steps:
            if moved:
                s.input_hash = moved.get(s.input_hash, s.input_hash) if s.input_hash else None
                s.output_hash = moved.get(s.output_hash, s.output_hash) if s.output_hash else None
            s.name = ft(s.name) or s.name
            s.error = self._error(s.error)
            s.attributes = self.mapping(s.attributes)
        for f in batch.findings:
            f.message = ft(f.message) or ""
            f.evidence = self.mapping(f.evidence)
        return batch

    def _error(self, e: ErrorInfo | None) -> ErrorInfo | None:
        if e is None:
            return None
        e.message = self.free_text(e.message) or ""
        e.traceback = self.free_text(e.traceback)
        return e
