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

Loaded once per change: ``LOADER`` (a ``ConfigLoader``) keeps the parsed file, keyed by its
identity (path, inode, size, modification time) and the ``FLIGHTLOG*`` environment, and
hands every caller the same read-only ``Config`` until the file or the environment changes.
Each capability validates its sections once per loaded ``Config``: ``Config.typed`` converts
a section into the msgspec ``Section`` classes the capability declares (the one declaration
of its settings) and ``Config.derive`` keeps what the capability builds from them, so a
server or an SDK process re-reads and re-validates nothing per ended run.

Size: just over 500 lines: the loader, its cache, environment overrides, line numbers and
the typed-section base are one mechanism; the sections themselves live with their capability.
"""

from __future__ import annotations

import copy
import enum
import os
import re
import threading
import tomllib
import types
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from flightlog.errors import ConfigurationError, FlightlogError

DEFAULT_FILE = "flightlog.toml"
ENV_FILE = "FLIGHTLOG_CONFIG"
ENV_OVERRIDE_PREFIX = "FLIGHTLOG__"

KeyPath = tuple[str | int, ...]
T = TypeVar("T")
# Environment variables a loaded configuration depends on: overrides, channel secrets,
# privacy and ledger settings, the user's configuration directory.
_ENV_PREFIX = "FLIGHTLOG"
_ENV_EXTRA = ("XDG_CONFIG_HOME", "HOME")

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
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    _index: dict[KeyPath, int] | None = field(default=None, repr=False, compare=False)
    _memo: dict[Any, tuple[bool, Any]] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def section(self, name: str) -> Any:
        """The value of a top-level section or key (None when absent)."""
        return self.data.get(name)

    def derive(self, key: Any, build: Callable[[], T]) -> T:
        """``build()``, computed once for this configuration under ``key`` (a capability's
        validated settings). A ``ConfigurationError`` is kept too and raised again, so a
        broken file is not re-validated per run either."""
        with self._lock:
            hit = self._memo.get(key)
        if hit is None:
            try:
                hit = (True, build())
            except ConfigurationError as exc:
                hit = (False, exc)
            with self._lock:
                hit = self._memo.setdefault(key, hit)
        ok, value = hit
        if not ok:
            raise type(value)(*value.args)
        return value  # type: ignore[no-any-return]

    def typed(self, kind: type[T], *keys: str) -> T:
        """The table at ``keys`` (the whole file when none) as ``kind``, a ``Section``
        class, converted once. Errors name the file, the line and the setting."""

        def convert() -> T:
            node: Any = self.data
            for k in keys:
                node = node.get(k) if isinstance(node, dict) else None
            if node is None:
                node = {}
            try:
                return msgspec.convert(node, kind, dec_hook=_from_toml)
            except msgspec.ValidationError as exc:
                raise ConfigurationError(_explain(self, exc, node, kind, keys)) from None

        return self.derive(("typed", kind, keys), convert)

    def where(self, *keys: str | int) -> str:
        """``flightlog.toml line 12`` for the setting at ``keys`` (or its nearest table);
        ``$FLIGHTLOG__SECTION__KEY`` when an environment variable set it (it overrides the
        file, so the file's line would point at the wrong value)."""
        for var in sorted(self.environ):
            if not var.startswith(ENV_OVERRIDE_PREFIX):
                continue
            parts = [p for p in var[len(ENV_OVERRIDE_PREFIX) :].split("__") if p]
            if 2 <= len(parts) <= len(keys) and all(
                _norm(p) == _norm(str(k)) for p, k in zip(parts, keys, strict=False)
            ):
                return f"${var}"
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
    """The configuration (see the module docstring), from ``LOADER``: parsed once per change
    of the file or of the ``FLIGHTLOG*`` environment. Shared: never modify it."""
    return LOADER.load(path, environ=environ)


@dataclass(frozen=True)
class FileIdentity:
    """What tells one version of the configuration file from another."""

    path: str
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, file: Path) -> FileIdentity:
        st = file.stat()
        return cls(os.path.abspath(file), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ConfigLoader:
    """Loads ``flightlog.toml`` once per change and hands out the same ``Config``.

    A ``Config`` is keyed by the file's identity and the environment it depends on (every
    ``FLIGHTLOG*`` variable, ``XDG_CONFIG_HOME``, ``HOME``); a call costs a ``stat`` while
    neither changes. ``parses`` counts the files read and parsed (tests and ``bench/`` read
    it); at most ``size`` configurations are kept, the least recently used dropped first.
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.parses = 0
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[Any, ...], Config] = OrderedDict()
        self._files: dict[FileIdentity, tuple[dict[str, Any], str]] = {}

    def load(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        env = relevant_environ(os.environ if environ is None else environ)
        file = find_config_file(path)
        try:
            ident = FileIdentity.of(file) if file is not None else None
        except OSError as exc:
            raise ConfigurationError(f"cannot read configuration file {file}: {exc}") from exc
        key = (ident, tuple(sorted(env.items())))
        with self._lock:
            cfg = self._cache.get(key)
            if cfg is not None:
                self._cache.move_to_end(key)
                return cfg
        if file is None or ident is None:
            data: dict[str, Any] = {}
            text = ""
        else:
            data, text = self._parsed(file, ident)
        if any(k.startswith(ENV_OVERRIDE_PREFIX) for k in env):
            data = copy.deepcopy(data)  # once per version and environment, not per call
            apply_env_overrides(data, env)
        cfg = Config(data=data, path=file, text=text, environ=env)
        with self._lock:
            cfg = self._cache.setdefault(key, cfg)
            self._cache.move_to_end(key)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return cfg

    def _parsed(self, file: Path, ident: FileIdentity) -> tuple[dict[str, Any], str]:
        with self._lock:
            hit = self._files.get(ident)
        if hit is not None:
            return hit
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read configuration file {file}: {exc}") from exc
        parsed = parse_config(text, file)
        with self._lock:
            self.parses += 1
            # One version per path: an edited file replaces the old one.
            for old in [i for i in self._files if i.path == ident.path]:
                del self._files[old]
            self._files[ident] = (parsed.data, text)
        return parsed.data, text

    def clear(self) -> None:
        """Forget every loaded configuration (the next ``load`` parses again)."""
        with self._lock:
            self._cache.clear()
            self._files.clear()


LOADER = ConfigLoader()


def relevant_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a loaded configuration depends on."""
    # Keys first, values only of those kept: os.environ decodes every value it yields.
    return {k: environ[k] for k in environ if k.startswith(_ENV_PREFIX) or k in _ENV_EXTRA}


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


# -- typed sections ----------------------------------------------------------------------------
class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of the classes that declare a section's settings: their names, types and
    defaults, once. An unknown setting is an error; a value type with a ``from_toml``
    class method (``Duration``, a pattern, a matcher) is read by it."""


def _from_toml(kind: type, value: Any) -> Any:
    """msgspec's hook for value types of our own: ``kind.from_toml(value)``."""
    read = getattr(kind, "from_toml", None)
    if read is None:
        raise TypeError(f"cannot read a setting as {kind!r}")
    try:
        return read(value)
    except FlightlogError as exc:  # msgspec reports ValueError with the setting's path
        raise ValueError(str(exc)) from None


_AT = re.compile(r"^(.*) - at `\$(.*)`$", re.S)
_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}


def _words(types_: str) -> str:
    """msgspec's ``int | float`` -> ``a whole number or a number``."""
    names = [t.strip() for t in types_.split("|") if t.strip() != "null"]
    if names == ["int", "float"] or names == ["float"]:
        return "a number"
    return " or ".join(_WORDS.get(t, t) for t in names) or "nothing"


def _explain(
    cfg: Config, exc: msgspec.ValidationError, node: Any, kind: Any, keys: tuple[str, ...]
) -> str:
    """A msgspec validation error as a message naming the file, the line and the setting."""
    path, message = _locate(exc, node, kind)
    full: KeyPath = (*keys, *path)
    m = re.match(r"Object contains unknown field `(.*)`$", message)
    if m:
        name = m.group(1)
        known = sorted(_field_names(_type_at(kind, node, path)))
        return (
            f"{cfg.where(*full, name)}: unknown setting {name!r} in {_table(full)}; "
            f"expected one of {', '.join(known)}"
        )
    m = re.match(r"Object missing required field `(.*)`$", message)
    if m:
        return f"{cfg.where(*full)}: {_table(full)} needs {m.group(1)} = ..."
    if message.startswith("Expected `"):
        text = re.sub(r", got `[^`]*`$", "", message[0].lower() + message[1:])
        text = re.sub(r"`([^`]*)`", lambda m: _words(m.group(1)), text)
        value = _value_at(node, path)
        setting = ".".join(str(k) for k in full) or "the file"
        return f"{cfg.where(*full)}: {setting}: {text}, got {value!r}"
    m = re.match(r"Invalid enum value (.*)$", message)
    if m:  # a Literal["process", "thread"] setting: name the values it takes
        setting = ".".join(str(k) for k in full) or "the file"
        choices = _choices(_type_at(kind, node, path))
        expected = f"; expected one of {', '.join(choices)}" if choices else ""
        return f"{cfg.where(*full)}: {setting}: {m.group(1)} is not a valid value{expected}"
    return f"{cfg.where(*full)}: {message}"


def _choices(kind: Any) -> list[str]:
    """The values a Literal (or an Enum) setting takes, quoted as in the file."""
    if typing.get_origin(kind) is typing.Literal:
        values = list(typing.get_args(kind))
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        values = [e.value for e in kind]
    else:
        return []
    return [f'"{v}"' if isinstance(v, str) else str(v) for v in values]


def _locate(exc: msgspec.ValidationError, node: Any, kind: Any) -> tuple[KeyPath, str]:
    """(the key path of the error, its message). msgspec writes ``[...]`` for the values of
    a table of tables (``[teams.NAME]``): the failing name is found by converting each."""
    m = _AT.match(str(exc))
    if not m:
        return (), str(exc)
    message, rest = m.group(1), m.group(2)
    path: list[str | int] = []
    for tok in _TOKEN.finditer(rest):
        name, index = tok.group(1), tok.group(2)
        if index == "...":
            table = _value_at(node, tuple(path))
            value_type = _type_at(kind, node, (*path, "..."), strip=False)
            if isinstance(table, dict):
                for k, v in table.items():
                    try:
                        msgspec.convert(v, value_type, dec_hook=_from_toml)
                    except msgspec.ValidationError as inner:
                        sub, message = _locate(inner, v, value_type)
                        return (*path, k, *sub), message
            return tuple(path), message
        path.append(name if name is not None else int(index))
    return tuple(path), message


def _strip(kind: Any) -> Any:
    """``X | None`` -> the table-like or list-like member."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        for arg in typing.get_args(kind):
            origin = typing.get_origin(arg) or arg
            if isinstance(origin, type) and (
                issubclass(origin, (msgspec.Struct, dict, list, tuple))
            ):
                return arg
    return kind


def _type_at(kind: Any, node: Any, path: KeyPath, *, strip: bool = True) -> Any:
    for step in path:
        kind = _strip(kind)
        origin = typing.get_origin(kind) or kind
        if isinstance(origin, type) and issubclass(origin, msgspec.Struct):
            kind = next(
                (f.type for f in msgspec.structs.fields(origin) if f.encode_name == step), Any
            )
        elif origin is dict:
            kind = typing.get_args(kind)[1]
        elif origin in (list, tuple):
            kind = typing.get_args(kind)[0]
        else:
            return Any
    return _strip(kind) if strip else kind


def _field_names(kind: Any) -> list[str]:
    origin = typing.get_origin(kind) or kind
    if isinstance(origin, type) and issubclass(origin, msgspec.Struct):
        return [f.encode_name for f in msgspec.structs.fields(origin)]
    return []


def _value_at(node: Any, path: KeyPath) -> Any:
    for step in path:
        try:
            node = node[step]  # a table's key or a list's index
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _table(path: KeyPath) -> str:
    """``[respond]``, ``[[owners]]``, ``[channels.pd]``: how the table at ``path`` is written."""
    names = [str(k) for k in path if not isinstance(k, int)]
    if not names:
        return "the file"
    inner = ".".join(names)
    return f"[[{inner}]]" if path and isinstance(path[-1], int) else f"[{inner}]"
