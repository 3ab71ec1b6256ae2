"""Options and helpers shared by CLI commands."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from flightlog import _json
from flightlog.errors import FlightlogError

F = TypeVar("F", bound=Callable[..., Any])

db_option = click.option(
    "--db",
    "db",
    envvar="FLIGHTLOG_URL",
    default="sqlite:///flightlog.db",
    show_default=True,
    help="Store URL (sqlite:///file.db or postgresql://...); also $FLIGHTLOG_URL.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")

if TYPE_CHECKING:
    from flightlog.store.base import Store


def _run_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter(
            "empty; give a run id (32 hex digits) or a unique prefix of one "
            "(`flightlog runs` lists them)"
        )
    return value.strip()


run_argument = click.argument("run_id", metavar="RUN", callback=_run_id)


@contextmanager
def errors_as_messages() -> Iterator[None]:
    """Turn Flightlog errors into a one-line message and exit status 1 (no traceback)."""
    import sqlite3

    try:
        yield
    except FlightlogError as exc:
        from flightlog.cli._safe import clean

        click.echo(f"error: {clean(str(exc))}", err=True)
        sys.exit(1)
    except sqlite3.DatabaseError as exc:  # a damaged store, met outside the store's own code
        click.echo(f"error: the store cannot be read: {exc}", err=True)
        sys.exit(1)


def open_store_for_cli(db: str, *, readonly: bool = False, create: bool = False) -> Store:
    """The store a command works on. Commands that only read pass ``readonly`` (nothing is
    written: no migrations, no files); no command creates a store unless it says so with
    ``create`` (a mistyped --db is an error, not a new empty database)."""
    from flightlog.app import open_store

    return open_store(db, readonly=readonly, create=create)


def echo_json(value: Any) -> None:
    """Print a value as indented JSON."""
    import orjson

    from flightlog.cli._safe import json_safe

    click.echo(
        json_safe(
            orjson.dumps(
                _json.tidy(value),
                option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
                default=_json._fallback,
            ).decode()
        )
    )


def cut(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters; a cut one ends with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def fmt_duration(ns: int | None) -> str:
    from flightlog._format import duration

    return duration(ns)


def fmt_time(ns: int | None) -> str:
    if ns is None:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_since(value: str | None) -> int | None:
    """``30m``, ``2h``, ``7d``, or an ISO-8601 time -> nanoseconds since the epoch."""
    from flightlog._durations import parse_since as parse
    from flightlog.errors import InputError

    try:
        return parse(value)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from exc
