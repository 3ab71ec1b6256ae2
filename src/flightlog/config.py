"""The configuration file, ``flightlog.toml``: loaded once, read by each capability.

This module is deliberately generic: it parses the TOML (``tomllib``), applies environment
overrides and can say on which line of the file a setting was written, so that each
capability (the response layer, the ledger, SLOs, ...) can validate its own section and
reject a bad setting with a message that names the line. It knows nothing about any
section's meaning.

Where the file is: ``--config PATH``, else ``$FLIGHTLOG_CONFIG``, else ``flightlog.toml`` in
the current directory (absent is fine: every capability has defaults).

Environment overrides: ``FLIGHTLOG__SECTION__KEY=value`` (double underscores separate the
levels of the key path; names are matched case-insensitively, ``-`` in a table name may be
written ``_``) replaces ``[section] key``. Values are parsed as TOML values when they parse
(``3``, ``true``, ``"x"``, ``[1, 2]``), else taken as strings. Capabilities may also read
named variables of their own (for example channel secrets, ``FLIGHTLOG_CHANNEL_*``).
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightlog.errors import ConfigurationError

DEFAULT_FILE = "flightlog.toml"
ENV_FILE = "FLIGHTLOG_CONFIG"
ENV_OVERRIDE_PREFIX = "FLIGHTLOG__"

KeyPath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_NAME = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)"""
_KEY = re.compile(rf"^\s*({_NAME}(?:\s*\.\s*{_NAME})*)\s*=")


def _split_dotted(text: str) -> list[str]:
    parts: list[str] = []
    for m in re.finditer(r'"([^"]*)"|\'([^\']*)\'|([A-Za-z0-9_-]+)', text):
        parts.append(next(g for g in m.groups() if g is not None))
    return parts


@dataclass
class Config:
    """A loaded configuration: the parsed ``data``, and where it came from.

    ``path`` is None when no file was found (``data`` then holds only environment
    overrides). ``line_of(...)`` finds the line a setting was written on.
    """

    data: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    text: str = ""
    _index: dict[KeyPath, int] | None = field(default=None, repr=False)

    def section(self, name: str) -> Any:
        """The value of a top-level section or key (None when absent)."""
        return self.data.get(name)

    def where(self, *keys: str | int) -> str:
        """``flightlog.toml line 12`` for the setting at ``keys`` (or its nearest table)."""
        name = str(self.path) if self.path else "configuration"
        line = self.line_of(*keys)
        return f"{name} line {line}" if line else name

    def line_of(self, *keys: str | int) -> int | None:
        """The 1-based line where the key path was written, else that of the nearest
        enclosing table or key that was; None when nothing matches (or no file).

        tomllib reports no positions, so this scans the text: table headers (``[a.b]``,
        ``[[a.b]]`` counted per array) and ``key = value`` lines, including dotted keys.
        Values inside inline tables resolve to the line of the key holding the table.
        """
        if not self.text:
            return None
        if self._index is None:
            self._index = _index_lines(self.text)
        path: KeyPath = tuple(keys)
        while path:
            if path in self._index:
                return self._index[path]
            path = path[:-1]
        return None


def _index_lines(text: str) -> dict[KeyPath, int]:
    """Map key paths to the line that defines them (a best-effort TOML scanner)."""
    index: dict[KeyPath, int] = {}
    array_counts: dict[tuple[str | int, ...], int] = {}
    current: KeyPath = ()
    in_multiline: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if in_multiline in line:
                in_multiline = None
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _HEADER.match(line)
        if m and "=" not in line.split("]", 1)[0]:
            names = _split_dotted(m.group(2))
            # Resolve array-of-table indices for the prefix (e.g. [[a]] then [a.b]).
            resolved: list[str | int] = []
            for i, name in enumerate(names):
                resolved.append(name)
                prefix = tuple(resolved)
                is_last = i == len(names) - 1
                if m.group(1) == "[[" and is_last:
                    n = array_counts.get(prefix, 0)
                    array_counts[prefix] = n + 1
                    resolved.append(n)
                elif prefix in array_counts:
                    resolved.append(array_counts[prefix] - 1)
            current = tuple(resolved)
            index.setdefault(current, lineno)
            if m.group(1) == "[[":
                index.setdefault(current[:-1], lineno)
            continue
        k = _KEY.match(line)
        if k:
            names = _split_dotted(k.group(1))
            path = current + tuple(names)
            index.setdefault(path, lineno)
            rest = line[k.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_multiline = quote
            # Multi-line arrays: index their elements by position is not attempted.
    return index


def find_config_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file to use: ``path``, else ``$FLIGHTLOG_CONFIG``, else
    ``./flightlog.toml`` if it exists. Raises when an explicitly named file is missing."""
    explicit = path or os.environ.get(ENV_FILE)
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            source = "--config" if path else f"${ENV_FILE}"
            raise ConfigurationError(
                f"configuration file {p} (from {source}) does not exist; create it or point "
                f"{source} at an existing flightlog.toml"
            )
        return p
    p = Path(DEFAULT_FILE)
    return p if p.is_file() else None


def parse_config(text: str, path: Path | None = None) -> Config:
    """Parse TOML text into a ``Config`` (no environment overrides)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = str(path) if path else "configuration"
        raise ConfigurationError(f"{where} is not valid TOML: {exc}") from exc
    return Config(data=data, path=path, text=text)


def load_config(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Load the configuration file (see the module docstring) and apply overrides."""
    env = os.environ if environ is None else environ
    file = find_config_file(path)
    cfg = Config() if file is None else _parsed(file)
    apply_env_overrides(cfg.data, env)
    return cfg


# Parsed files by path, reused while the file's size and modification time are unchanged:
# run-end hooks read the configuration once per ended run.
_parsed_cache: dict[Path, tuple[tuple[int, int], Config]] = {}


def _parsed(file: Path) -> Config:
    try:
        st = file.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        hit = _parsed_cache.get(file)
        if hit is None or hit[0] != stamp:
            text = file.read_text(encoding="utf-8")
            hit = (stamp, parse_config(text, file))
            _parsed_cache[file] = hit
    except OSError as exc:
        raise ConfigurationError(f"cannot read configuration file {file}: {exc}") from exc
    cached = hit[1]
    # A fresh copy each time: overrides are applied to it in place.
    return Config(data=copy.deepcopy(cached.data), path=cached.path, text=cached.text)


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _norm(name: str) -> str:
    return name.lower().replace("-", "_")


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Apply ``FLIGHTLOG__SECTION__KEY=value`` variables to ``data`` in place."""
    for var, raw in sorted(environ.items()):
        if not var.startswith(ENV_OVERRIDE_PREFIX) or len(var) == len(ENV_OVERRIDE_PREFIX):
            continue
        parts = [p for p in var[len(ENV_OVERRIDE_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node: dict[str, Any] = data
        for part in parts[:-1]:
            match = next((k for k in node if _norm(k) == _norm(part)), None)
            key = match if match is not None else part.lower()
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        last = parts[-1]
        match = next((k for k in node if _norm(k) == _norm(last)), None)
        node[match if match is not None else last.lower()] = _parse_env_value(raw)
