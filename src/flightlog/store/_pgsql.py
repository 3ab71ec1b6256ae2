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
