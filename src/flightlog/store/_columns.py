"""How a record maps to its table's row, generated from ``flightlog.model``.

Each core table has one column per field of its record, in the field order of the dataclass,
with the same name (``RENAMES`` lists the exceptions: ``index`` is a reserved word in SQL).
Values are stored as they are, except a ``dict`` field and an ``ErrorInfo`` field, which are
stored as canonical JSON text (read back as ``{}`` and ``None`` when empty). So a field added
to ``Run``, ``Step`` or ``Finding`` is written and read here without an edit: it needs only
its column (a core migration in ``store/schema.py``). ``tests/unit/test_one_schema.py`` holds
the tables of both dialects to the model.

The row functions are built once, at import, as the source a person would write (a tuple of
attribute reads; the record's constructor over the row), so writing or reading a step costs
what the hand-written functions did.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from flightlog import _json
from flightlog.model import ErrorInfo, Finding, Run, Step

# Field -> column where the two differ.
RENAMES = {"index": "idx"}


def _err_out(e: ErrorInfo | None) -> str | None:
    return _json.dumps(e.to_dict()) if e else None


def _err_in(text: Any) -> ErrorInfo | None:
    return ErrorInfo.from_dict(_json.loads(text)) if text else None  # (most rows: NULL)


def _dict_out(value: Any) -> str:
    # Most records carry no attributes: their JSON is known without encoding.
    return "{}" if type(value) is dict and not value else _json.dumps(value)


def _dict_in(text: Any) -> dict[str, Any]:
    return _json.loads(text) or {}


def _codec(hint: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]] | None:
    """(to column, from column) for a field type that is not stored as it is."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    if hint is ErrorInfo:
        return _err_out, _err_in
    if typing.get_origin(hint) is dict or hint is dict:
        return _dict_out, _dict_in
    return None


class Columns:
    """The columns of one record's table, and its row functions."""

    def __init__(self, record: type[Any]) -> None:
        fields = dataclasses.fields(record)
        hints = typing.get_type_hints(record)
        self.record = record
        self.names: tuple[str, ...] = tuple(RENAMES.get(f.name, f.name) for f in fields)
        self.sql = ", ".join(self.names)
        # The two functions are written out as source, as ``dataclasses`` writes ``__init__``:
        # a tuple of attribute reads and a call, with a converter only where a field needs one.
        env: dict[str, Any] = {"record": record}
        out, into = [], []
        for i, f in enumerate(fields):
            codec = _codec(hints[f.name])
            if codec is None:
                out.append(f"r.{f.name}")
                into.append(f"row[{i}]")
            else:
                env[f"o{i}"], env[f"i{i}"] = codec
                out.append(f"o{i}(r.{f.name})")
                into.append(f"i{i}(row[{i}])")
        source = (
            f"def row(r):\n    return ({', '.join(out)},)\n"
            f"def from_row(row):\n    return record({', '.join(into)})\n"
        )
        exec(source, env)  # noqa: S102 - our own field names, from the dataclass
        self.row: Callable[[Any], tuple[Any, ...]] = env["row"]
        self.from_row: Callable[[Sequence[Any]], Any] = env["from_row"]

    def placeholders(self) -> str:
        return ", ".join("?" * len(self.names))


RUNS = Columns(Run)
STEPS = Columns(Step)
FINDINGS = Columns(Finding)


RUN_COLUMNS = RUNS.sql
STEP_COLUMNS = STEPS.sql
FINDING_COLUMNS = FINDINGS.sql
run_row: Callable[[Run], tuple[Any, ...]] = RUNS.row
step_row: Callable[[Step], tuple[Any, ...]] = STEPS.row
finding_row: Callable[[Finding], tuple[Any, ...]] = FINDINGS.row
run_from_row: Callable[[Sequence[Any]], Run] = RUNS.from_row
step_from_row: Callable[[Sequence[Any]], Step] = STEPS.from_row
finding_from_row: Callable[[Sequence[Any]], Finding] = FINDINGS.from_row
