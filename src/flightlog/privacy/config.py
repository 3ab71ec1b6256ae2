"""Privacy settings: the ``[privacy]`` section of ``flightlog.toml`` and ``FLIGHTLOG_PRIVACY*``.

::

    [privacy]
    enabled = true                 # FLIGHTLOG_PRIVACY=off turns scrubbing off
    action = "mask"                # default action: mask | hash | drop  (FLIGHTLOG_PRIVACY_ACTION)
    disable = ["phone"]            # built-in detectors to turn off     (FLIGHTLOG_PRIVACY_DISABLE)
    keys = ["x-customer-*"]        # more secret key names (fnmatch)     (FLIGHTLOG_PRIVACY_KEYS)
    salt_file = "/etc/flightlog/privacy.salt"   # FLIGHTLOG_PRIVACY_SALT_FILE

    [privacy.actions]              # per built-in rule
    email = "hash"

    [[privacy.patterns]]           # your own rules
    name = "customer_id"
    regex = 'CUST-\\d{6}'
    action = "hash"

Actions: ``mask`` replaces the secret with ``[redacted: NAME]``; ``hash`` with
``[redacted: NAME #<16 hex>]``, an HMAC-SHA256 under a secret salt, so equal values stay
linkable across runs while nobody without the salt can confirm a guess; ``drop`` discards the
whole value that holds it (an attribute or JSON member is removed, another value becomes
``[redacted: NAME]``).

The salt is ``$FLIGHTLOG_PRIVACY_SALT`` if set, else read from ``salt_file`` (default
``$XDG_CONFIG_HOME/flightlog/privacy.salt`` or ``~/.config/flightlog/privacy.salt``; created
with mode 0600 on first use when a rule hashes). Give the SDK and the server the same salt for
their hashes to match.
"""

from __future__ import annotations

import fnmatch
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightlog.config import Config, Section, load_config, relevant_environ
from flightlog.errors import ConfigurationError
from flightlog.privacy.detectors import BUILTIN, BUILTIN_NAMES, KEY_PATTERN, Detector, key_words

ACTIONS: tuple[str, ...] = ("mask", "hash", "drop")
KEY_RULE = "credential"  # the name shown for values scrubbed because of their key
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Rule:
    """A detector with the action taken on what it finds."""

    detector: Detector
    action: str

    @property
    def name(self) -> str:
        return self.detector.name


@dataclass(frozen=True)
class PrivacyConfig:
    """Resolved privacy settings (``from_env``), turned into a ``Scrubber`` once."""

    enabled: bool = True
    rules: tuple[Rule, ...] = tuple(Rule(d, "mask") for d in BUILTIN)
    key_action: str = "mask"
    extra_keys: tuple[str, ...] = ()
    salt: bytes | None = None  # set when some rule hashes
    _key_regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        extra = "|".join(fnmatch.translate(p.lower().replace("-", "_")) for p in self.extra_keys)
        pattern = KEY_PATTERN + (f"|^(?:{extra})" if extra else "")
        object.__setattr__(self, "_key_regex", re.compile(pattern))

    def key_is_secret(self, key: str) -> bool:
        """Whether a value stored under ``key`` is scrubbed whatever it is."""
        return (
            self._key_regex.search(key.lower().replace("-", "_")) is not None
            or self._key_regex.search(key_words(key)) is not None
        )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, config: Config | None = None
    ) -> PrivacyConfig:
        """Settings from ``FLIGHTLOG_PRIVACY*`` variables, else ``[privacy]`` in the
        configuration file, else the defaults (every built-in detector, masking). Built once
        per loaded configuration and environment."""
        e = relevant_environ(os.environ if env is None else env)
        cfg = config if config is not None else load_config(environ=e)
        return cfg.derive(("privacy", tuple(sorted(e.items()))), lambda: _build(cls, cfg, e))


class PatternSection(Section, frozen=True):
    """One ``[[privacy.patterns]]`` rule, as written."""

    name: str | None = None
    regex: str | None = None
    action: str | None = None
    description: str = ""


class PrivacySection(Section, frozen=True):
    """``[privacy]``, as written (``enabled`` also takes on/off)."""

    enabled: bool | str | None = None
    action: str | None = None
    disable: str | tuple[str, ...] | None = None
    keys: str | tuple[str, ...] | None = None
    salt_file: str | None = None
    actions: dict[str, str] = {}
    patterns: tuple[PatternSection, ...] = ()


def _build(cls: type[PrivacyConfig], cfg: Config, e: Mapping[str, str]) -> PrivacyConfig:
    section = cfg.typed(PrivacySection, "privacy")

    def text(var: str, value: Any) -> Any:
        return e.get(var, value)

    enabled = _switch(text("FLIGHTLOG_PRIVACY", section.enabled), cfg.where("privacy", "enabled"))
    default = _action(
        text("FLIGHTLOG_PRIVACY_ACTION", section.action) or "mask",
        "$FLIGHTLOG_PRIVACY_ACTION"
        if "FLIGHTLOG_PRIVACY_ACTION" in e
        else cfg.where("privacy", "action"),
    )
    disabled = _names(text("FLIGHTLOG_PRIVACY_DISABLE", section.disable))
    for name in disabled:
        if name not in BUILTIN_NAMES and name != KEY_RULE:
            raise ConfigurationError(
                f"{cfg.where('privacy', 'disable')}: no built-in detector {name!r}; "
                f"the built-in ones are {', '.join(BUILTIN_NAMES + (KEY_RULE,))}"
            )
    keys = _names(text("FLIGHTLOG_PRIVACY_KEYS", section.keys))
    actions = section.actions
    custom = _patterns(cfg, section.patterns, default)
    known = set(BUILTIN_NAMES) | {KEY_RULE} | {r.name for r in custom}
    for name, value in actions.items():
        if name not in known:
            raise ConfigurationError(
                f"{cfg.where('privacy', 'actions', name)}: no rule named {name!r}; "
                f"rules are {', '.join(sorted(known))}"
            )
        _action(value, cfg.where("privacy", "actions", name))
    rules = [
        Rule(d, _action(actions.get(d.name, default), cfg.where("privacy", "actions")))
        for d in BUILTIN
        if d.name not in disabled
    ]
    # Your own patterns run first: they are more specific than the built-in ones.
    rules = [Rule(r.detector, actions.get(r.name, r.action)) for r in custom] + rules
    key_action = actions.get(KEY_RULE, default)
    keys_on = KEY_RULE not in disabled
    salt: bytes | None = None
    if any(r.action == "hash" for r in rules) or (keys_on and key_action == "hash"):
        salt_file = text("FLIGHTLOG_PRIVACY_SALT_FILE", section.salt_file)
        path = Path(str(salt_file)).expanduser() if salt_file else _default_salt_file(e)
        salt = _salt(e.get("FLIGHTLOG_PRIVACY_SALT"), path)
    return cls(
        enabled=enabled,
        rules=tuple(rules),
        key_action=key_action if keys_on else "off",
        extra_keys=keys,
        salt=salt,
    )


def _switch(value: Any, where: str) -> bool:
    if value is None or isinstance(value, bool):
        return value is not False
    v = str(value).strip().lower()
    if v in ("on", "1", "true", "yes", ""):
        return True
    if v in ("off", "0", "false", "no", "disabled"):
        return False
    raise ConfigurationError(f"{where}: expected on or off, got {value!r}")


def _action(value: Any, where: str) -> str:
    if value not in ACTIONS:
        raise ConfigurationError(
            f"{where}: unknown privacy action {value!r}; expected mask, hash or drop"
        )
    return str(value)


def _names(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return tuple(value)


def _patterns(cfg: Config, value: tuple[PatternSection, ...], default: str) -> list[Rule]:
    out: list[Rule] = []
    seen = set(BUILTIN_NAMES) | {KEY_RULE}
    for i, item in enumerate(value):
        where = cfg.where("privacy", "patterns", i)
        name = item.name
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigurationError(
                f"{where}: a pattern needs a name of lower-case letters, digits and _ "
                f"(got {name!r})"
            )
        if name in seen:
            raise ConfigurationError(
                f"{where}: the rule name {name!r} is already taken; use [privacy.actions] to "
                "change a built-in rule's action"
            )
        seen.add(name)
        if not item.regex:
            raise ConfigurationError(f"{where}: pattern {name!r} needs a regex")
        try:
            compiled = re.compile(item.regex)
        except re.error as exc:
            raise ConfigurationError(
                f"{cfg.where('privacy', 'patterns', i, 'regex')}: pattern {name!r} is not a "
                f"valid regular expression: {exc}"
            ) from exc
        if compiled.match(""):
            raise ConfigurationError(
                f"{cfg.where('privacy', 'patterns', i, 'regex')}: pattern {name!r} matches "
                "the empty string; it would match everywhere"
            )
        action = _action(item.action or default, cfg.where("privacy", "patterns", i))
        out.append(Rule(Detector(name, compiled, None, item.description), action))
    return out


def _default_salt_file(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/flightlog/privacy.salt``, else ``~/.config/flightlog/privacy.salt``."""
    base = env.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base).expanduser() if base else Path("~/.config").expanduser()
    return root / "flightlog" / "privacy.salt"


def _salt(value: str | None, path: Path) -> bytes:
    """The hashing salt: from the environment, else from ``path`` (created 0600)."""
    if value:
        return value.encode()
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the privacy salt {path}: {exc}; set $FLIGHTLOG_PRIVACY_SALT"
        ) from exc
    if data is not None:
        if len(data) < 16:
            raise ConfigurationError(
                f"the privacy salt {path} holds {len(data)} byte(s); a salt needs at least 16 "
                "(delete the file to have a new one made)"
            )
        return data
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _salt(None, path)  # created meanwhile by another process
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the privacy salt {path}: {exc}; set $FLIGHTLOG_PRIVACY_SALT or "
            "salt_file in [privacy]"
        ) from exc
    data = secrets.token_hex(32).encode()
    try:
        os.write(fd, data + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return data
