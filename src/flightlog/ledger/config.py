"""Ledger settings: ``FLIGHTLOG_LEDGER_*`` environment variables, else the ``[ledger]``
section of ``flightlog.toml`` (the key in brackets), else the defaults.

- ``FLIGHTLOG_LEDGER`` [``enabled``]: ``off`` disables the ledger (default on)
- ``FLIGHTLOG_LEDGER_KEY`` [``key``]: the signing key file, created (mode 0600, its
  directory 0700) when a checkpoint is first signed; read commands never create it. Default:
  ``<config dir>/flightlog/keys/<log origin>.key``, outside the store's directory, where
  ``<config dir>`` is ``$XDG_CONFIG_HOME`` or ``~/.config`` (a key file
  ``<db>.ledger-key`` beside a SQLite store, from earlier versions, is still used)
- ``FLIGHTLOG_LEDGER_WITNESS`` [``witness``]: where every checkpoint is published: a file,
  a directory, or a git repository (each checkpoint committed); ``off`` to disable. Default:
  ``<config dir>/flightlog/witness/`` (``<db>.checkpoints`` if an earlier version wrote one)
- ``FLIGHTLOG_LEDGER_CHECKPOINT_EVERY`` [``checkpoint_every``]: sign a checkpoint every N
  entries (10000)
- ``FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS`` [``checkpoint_seconds``]: ... or when T seconds
  have passed (60)
- ``FLIGHTLOG_LEDGER_SENSITIVE`` [``sensitive``]: extra attribute-key patterns to commit
  (comma-separated, or a TOML list; fnmatch, case-insensitive)
- ``FLIGHTLOG_LEDGER_RETENTION_DAYS`` [``retention_days``]: the retention window; pruning
  inside it is refused (183)
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import msgspec

from flightlog.config import Section
from flightlog.errors import ConfigurationError

# Record fields that always go into salted commitments: references to captured inputs and
# outputs (SHA-256 of their canonical JSON, which would otherwise let anyone confirm a guess
# of a redacted value), and free text that can hold names and addresses no detector knows:
# run reasons, finding messages, error messages and tracebacks (dotted: a nested field).
COMMITTED_FIELDS: tuple[str, ...] = (
    "input_hash",
    "output_hash",
    "reason",
    "message",
    "error.message",
    "error.traceback",
)
# Top-level keys of capabilities' audit records (attribution, incident transitions, alerts,
# redactions) that hold free text, committed whatever their name.
FREE_TEXT_KEYS: tuple[str, ...] = (
    "reason",
    "message",
    "summary",
    "cause",
    "evidence",
    "alternatives",
    "note",
    "error",
    "detail",
)

# Attribute / evidence / audit-data keys treated as personal or secret by default.
DEFAULT_SENSITIVE_PATTERNS: tuple[str, ...] = (
    "*password*",
    "*passwd*",
    "*secret*",
    "*api_key*",
    "*apikey*",
    "*access_token*",
    "*auth_token*",
    "*authorization*",
    "*cookie*",
    "*email*",
    "*phone*",
    "*ssn*",
    "*credit_card*",
    "*credential*",
    "*iban*",
    "user.*",
    "enduser.*",
    "sensitive.*",
)
# An attribute listing further keys its record marks as sensitive: {"flightlog.sensitive": [...]}
SENSITIVE_MARK = "flightlog.sensitive"

MIN_RETENTION_DAYS = 183  # six months: EU AI Act Art. 19(1) and 26(6) "at least six months"


@dataclass(frozen=True)
class LedgerConfig:
    """How a store's ledger behaves. ``from_env`` reads the environment."""

    enabled: bool = True
    key_path: Path | None = None  # None: key_dir / "<origin>.key"
    witness_path: Path | None = None
    checkpoint_every: int = 10_000
    checkpoint_seconds: float = 5.0
    key_dir: Path | None = None
    sensitive_patterns: tuple[str, ...] = DEFAULT_SENSITIVE_PATTERNS
    committed_fields: tuple[str, ...] = COMMITTED_FIELDS
    # The attributes and the evidence of a record each go into one commitment (True), so
    # that `audit redact` can erase values no pattern names; False commits only the values
    # of sensitive keys, one by one.
    commit_all_attributes: bool = True
    retention_days: float = MIN_RETENTION_DAYS
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1:
            raise ConfigurationError("ledger checkpoint_every must be at least 1 entry")
        if self.retention_days < 0:
            raise ConfigurationError("ledger retention_days must not be negative")
        regex = "|".join(fnmatch.translate(p.lower()) for p in self.sensitive_patterns)
        object.__setattr__(self, "_regex", re.compile(regex or r"(?!)"))

    def is_sensitive(self, key: str) -> bool:
        return self._regex.match(key.lower()) is not None

    @classmethod
    def from_env(
        cls, store_url: str | None = None, env: Mapping[str, str] | None = None
    ) -> LedgerConfig:
        """Settings from ``FLIGHTLOG_LEDGER_*`` variables, else the ``[ledger]`` section of
        ``flightlog.toml`` (``enabled``, ``key``, ``witness``, ``checkpoint_every``,
        ``checkpoint_seconds``, ``sensitive``, ``retention_days``), else the defaults."""
        e = os.environ if env is None else env
        section = _file_section(e)

        def setting(var: str, key: str) -> str | None:
            if var in e:
                return e[var]
            value = getattr(section, key)
            if value is None:
                return None
            if isinstance(value, bool):
                return "on" if value else "off"
            if isinstance(value, tuple):
                return ",".join(value)
            return str(value)

        enabled = is_on(setting("FLIGHTLOG_LEDGER", "enabled"))
        db_path = _db_path(store_url)
        config_dir = user_config_dir(e)
        key = setting("FLIGHTLOG_LEDGER_KEY", "key")
        legacy_key = db_path.with_name(db_path.name + ".ledger-key") if db_path else None
        if key:
            key_path: Path | None = Path(key).expanduser()
        elif legacy_key is not None and legacy_key.exists():
            key_path = legacy_key
        else:
            key_path = None  # per log, in the user's configuration directory
        witness = setting("FLIGHTLOG_LEDGER_WITNESS", "witness")
        legacy_witness = db_path.with_name(db_path.name + ".checkpoints") if db_path else None
        if witness is not None and witness.strip().lower() in ("off", "none", ""):
            witness_path: Path | None = None
        elif witness:
            witness_path = Path(witness).expanduser()
        elif legacy_witness is not None and legacy_witness.exists():
            witness_path = legacy_witness
        elif config_dir is not None:
            witness_path = config_dir / "witness"
        else:
            witness_path = None
        extra_text = setting("FLIGHTLOG_LEDGER_SENSITIVE", "sensitive") or ""
        extra = tuple(p.strip() for p in extra_text.split(",") if p.strip())
        try:
            every = int(setting("FLIGHTLOG_LEDGER_CHECKPOINT_EVERY", "checkpoint_every") or 10_000)
            seconds = float(
                setting("FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS", "checkpoint_seconds") or 5
            )
            days = float(
                setting("FLIGHTLOG_LEDGER_RETENTION_DAYS", "retention_days") or MIN_RETENTION_DAYS
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"bad ledger setting ({exc}); checkpoint_every, checkpoint_seconds and "
                "retention_days take numbers"
            ) from exc
        return cls(
            enabled=enabled,
            key_path=key_path,
            witness_path=witness_path,
            checkpoint_every=every,
            checkpoint_seconds=seconds,
            sensitive_patterns=DEFAULT_SENSITIVE_PATTERNS + extra,
            retention_days=days,
            key_dir=config_dir / "keys" if config_dir is not None else None,
        )


def user_config_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_CONFIG_HOME/flightlog``, else ``~/.config/flightlog`` (None without a home)."""
    e = os.environ if env is None else env
    base = e.get("XDG_CONFIG_HOME", "").strip()
    if base:
        return Path(base).expanduser() / "flightlog"
    try:
        return Path.home() / ".config" / "flightlog"
    except RuntimeError:  # no home directory to be found
        return None


def is_on(value: str | None) -> bool:
    """A switch setting: absent means on; ``off``/``0``/``false``/``no`` mean off."""
    if value is None:
        return True
    return value.strip().lower() not in ("off", "0", "false", "no", "disabled")


class LedgerSection(Section, frozen=True):
    """``[ledger]``, as written (each also has its ``FLIGHTLOG_LEDGER_*`` variable)."""

    enabled: bool | str | None = None
    key: str | None = None
    witness: bool | str | None = None
    checkpoint_every: Annotated[int, msgspec.Meta(ge=1)] | None = None
    checkpoint_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = None
    sensitive: str | tuple[str, ...] | None = None
    retention_days: Annotated[float, msgspec.Meta(ge=0)] | None = None


def _file_section(env: Mapping[str, str]) -> LedgerSection:
    """The ``[ledger]`` table of the configuration file (defaults when there is none),
    checked once per loaded configuration."""
    from flightlog.config import load_config

    return load_config(environ=env).typed(LedgerSection, "ledger")


def _db_path(store_url: str | None) -> Path | None:
    if store_url and store_url.startswith("sqlite:///"):
        rest = store_url[len("sqlite:///") :]
        return Path(rest) if rest else None
    return None
