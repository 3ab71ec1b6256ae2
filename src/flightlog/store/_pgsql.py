"""Rewriting Flightlog's portable SQL for PostgreSQL (pure string functions, no driver).

The shared SQL (``flightlog.store._sql`` and every capability's own queries) is written once,
with ``?`` placeholders and SQLite-compatible type names. For psycopg 3 two rewrites apply:

**Queries** (``to_pyformat``): every ``?`` outside a quoted string, quoted identifier or
comment becomes ``%s``, and every ``%`` becomes ``%%`` (psycopg reads ``%`` everywhere,
even inside string literals, so a literal ``LIKE 'a%'`` must reach it doubled; the driver
turns it back into one ``%``). The scanner knows exactly the quoting that portable SQL
uses: ``'...'`` with ``''`` as the escaped quote, ``"..."`` identifiers, ``-- ...`` line
comments and ``/* ... */`` block comments. PostgreSQL-only syntax is outside the contract
and is not recognised: ``E'...'`` strings with backslash escapes, ``$$...$$`` dollar
quoting and the ``?``/``?|``/``?&`` JSON operators (use ``jsonb_exists`` and friends).

**DDL** run through ``Store.migrate`` (``to_postgres_ddl``): type names are mapped so a
column behaves the same on both engines:

- ``BLOB`` -> ``BYTEA`` (read back as ``bytes``);
- ``INTEGER`` -> ``BIGINT`` (SQLite integers are 64-bit; PostgreSQL's ``INTEGER`` is 32);
- ``REAL`` -> ``DOUBLE PRECISION`` (SQLite ``REAL`` is an 8-byte float, PostgreSQL's is 4);
- ``BOOLEAN`` -> ``BIGINT`` (SQLite stores booleans as 0/1 integers; the PostgreSQL store
  also sends Python ``bool`` parameters as 0/1, so flags read back the same on both).

Only whole words outside quotes and comments are mapped, so a column named ``blob_size`` or
a default ``'INTEGER'`` is left alone.
"""

from __future__ import annotations

import re
from functools import lru_cache

_DDL_TYPES = {
    "BLOB": "BYTEA",
    "INTEGER": "BIGINT",
    "REAL": "DOUBLE PRECISION",
    "BOOLEAN": "BIGINT",
}
_TYPE_WORD = re.compile(r"\b(" + "|".join(_DDL_TYPES) + r")\b", re.IGNORECASE)


def _segments(sql: str) -> list[tuple[bool, str]]:
    """Split ``sql`` into (is_code, text) pieces: code vs quoted strings/identifiers/comments.

    An unterminated quote or comment runs to the end of the text (the server reports it).
    """
    out: list[tuple[bool, str]] = []
    n = len(sql)
    i = start = 0
    while i < n:
        c = sql[i]
        end = -1
        if c == "'" or c == '"':
            j = i + 1
            while True:
                j = sql.find(c, j)
                if j == -1:
                    end = n
                    break
                if j + 1 < n and sql[j + 1] == c:  # '' or "" inside the quotes
                    j += 2
                    continue
                end = j + 1
                break
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            end = n if j == -1 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            end = n if j == -1 else j + 2
        if end == -1:
            i += 1
            continue
        if start < i:
            out.append((True, sql[start:i]))
        out.append((False, sql[i:end]))
        i = start = end
    if start < n:
        out.append((True, sql[start:]))
    return out


# ``col IN (?, ?, ...)`` (or ``NOT IN``) with two placeholders or more, in code.
_IN_LIST = re.compile(r"(\bNOT\s+)?\bIN\s*\(\s*\?(?:\s*,\s*\?)+\s*\)", re.IGNORECASE)


@lru_cache(maxsize=2048)
def in_lists(sql: str) -> tuple[tuple[int, int, int, int, bool], ...]:
    """The ``IN (?, ?, ...)`` lists of ``sql`` outside quotes and comments: (start, end
    in the text, index of the first parameter, how many, whether ``NOT IN``)."""
    if "?" not in sql:
        return ()
    out: list[tuple[int, int, int, int, bool]] = []
    marks = offset = 0
    for is_code, text in _segments(sql):
        if is_code:
            last = 0
            for m in _IN_LIST.finditer(text):
                marks += text.count("?", last, m.start())
                n = m.group(0).count("?")
                out.append((offset + m.start(), offset + m.end(), marks, n, bool(m.group(1))))
                marks += n
                last = m.end()
            marks += text.count("?", last)
        offset += len(text)
    return tuple(out)


@lru_cache(maxsize=1024)
def with_arrays(sql: str, kinds: tuple[str | None, ...]) -> str:
    """``sql`` with each ``IN`` list of ``in_lists(sql)`` whose kind is given (an SQL array
    element type) as ``= ANY(?::kind[])`` (``<> ALL(...)`` for ``NOT IN``): one array
    parameter, so the statement's text (psycopg's and PostgreSQL's prepared statement)
    no longer depends on how many values it is given."""
    parts: list[str] = []
    last = 0
    for (start, end, _, _, negated), kind in zip(in_lists(sql), kinds, strict=True):
        parts.append(sql[last:start])
        if kind is None:
            parts.append(sql[start:end])
        else:
            parts.append(f"{'<> ALL' if negated else '= ANY'}(?::{kind}[])")
        last = end
    parts.append(sql[last:])
    return "".join(parts)


@lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """``?`` placeholders -> ``%s`` and ``%`` -> ``%%``, outside quotes and comments."""
    if "?" not in sql and "%" not in sql:
        return sql
    parts: list[str] = []
    for is_code, text in _segments(sql):
        text = text.replace("%", "%%")
        if is_code:
            text = text.replace("?", "%s")
        parts.append(text)
    return "".join(parts)


def to_postgres_ddl(sql: str) -> str:
    """Map SQLite-compatible type names in a DDL statement to their PostgreSQL equivalents."""
    return "".join(
        _TYPE_WORD.sub(lambda m: _DDL_TYPES[m.group(1).upper()], text) if is_code else text
        for is_code, text in _segments(sql)
    )


# -- many rows in one statement ---------------------------------------------------------------
_INSERT_VALUES = re.compile(
    r"\s*INSERT\s+INTO\s+(\w+)\s*\(([\w\s,]+)\)\s*VALUES\s*\(([?,\s]+)\)(.*)",
    re.IGNORECASE | re.DOTALL,
)
_CONFLICT_UPDATE = re.compile(
    r"ON\s+CONFLICT\s*\(([\w\s,]+)\)\s*DO\s+UPDATE", re.IGNORECASE | re.DOTALL
)


@lru_cache(maxsize=256)
def columnar(sql: str) -> tuple[str, tuple[str, ...], str, tuple[int, ...] | None] | None:
    """For a one-row ``INSERT INTO t (cols) VALUES (?, ...) [tail]`` whose tail has no
    placeholder: (table, columns, tail, positions of the ``ON CONFLICT ... DO UPDATE`` key
    columns or None), so its rows can go in as one ``INSERT ... SELECT * FROM unnest(...)``
    (one array per column); None for any other statement."""
    m = _INSERT_VALUES.fullmatch(sql)
    if m is None:
        return None
    table, cols_text, marks, tail = m.groups()
    columns = tuple(c.strip() for c in cols_text.split(","))
    if marks.count("?") != len(columns) or "?" in tail or ";" in tail:
        return None
    if any(not is_code and text for is_code, text in _segments(tail)):
        return None  # quotes or comments in the tail: not ours to rewrite
    keys: tuple[int, ...] | None = None
    up = _CONFLICT_UPDATE.search(tail)
    if up is not None:
        names = [c.strip() for c in up.group(1).split(",")]
        if not set(names) <= set(columns):
            return None
        keys = tuple(columns.index(n) for n in names)
    return table, columns, tail.strip(), keys


_UPDATE_SET = re.compile(
    r"\s*UPDATE\s+(\w+)\s+SET\s+(\w+\s*=\s*\?(?:\s*,\s*\w+\s*=\s*\?)*)\s+"
    r"WHERE\s+(\w+\s*=\s*\?(?:\s+AND\s+\w+\s*=\s*\?)*)\s*",
    re.IGNORECASE | re.DOTALL,
)


@lru_cache(maxsize=256)
def columnar_update(sql: str) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
    """For ``UPDATE t SET a = ?, ... WHERE k = ? AND ...`` (nothing else): (table, the set
    columns, the key columns), so many rows can go as one ``UPDATE ... FROM unnest(...)``;
    None for any other statement."""
    m = _UPDATE_SET.fullmatch(sql)
    if m is None:
        return None
    table, sets, where = m.groups()
    set_cols = tuple(p.split("=")[0].strip() for p in sets.split(","))
    key_cols = tuple(
        p.split("=")[0].strip() for p in re.split(r"\s+AND\s+", where, flags=re.IGNORECASE)
    )
    return table, set_cols, key_cols
