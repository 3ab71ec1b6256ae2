"""One schema, checked: every place that restates a record agrees with ``flightlog.model``.

A record (``Run``, ``Step``, ``Edge``, ``Payload``, ``Finding``) is defined once, as a dataclass
in ``flightlog.model``. Its fields are restated by the store's tables (``store/schema.py``) and
row mappers (``store/_sql.py``), the OpenAPI document (``server/openapi.py``), the audit
ledger's entries (``ledger/entry.py``) and the OTLP encoding (``otel/encode.py`` and
``otel/decode.py``). These tests read the real definitions (the dataclass fields, the columns of
a freshly migrated SQLite and PostgreSQL store, the served OpenAPI document, the ledger's entry
data, an OTLP round trip), so adding a field to a record fails here until every view carries it
or ``OMITTED`` says why it does not.

Sample records are built from the dataclasses' type hints, every field set to a value other than
its default, so a new field is covered without editing this file.
"""

from __future__ import annotations

import dataclasses
import itertools
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightlog import model
from flightlog.model import Batch, Edge, ErrorInfo, Finding, Payload, Run, Step

RECORDS: tuple[type, ...] = (Run, Step, Edge, Payload, Finding)
TABLES = {Run: "runs", Step: "steps", Edge: "edges", Payload: "payloads", Finding: "findings"}

# The one list of fields whose name differs between the model and a view: (view, record,
# field) -> the view's name. ``index`` is a reserved word in SQL.
RENAMES: dict[tuple[str, str, str], str] = {
    ("sql", "Step", "index"): "idx",
}

# Fields a view leaves out on purpose, and why: (view, record, field) -> reason. A record left
# out as a whole is listed with field "*". The list may only shrink: an entry that no longer
# matches a real omission fails ``test_omissions_are_current``.
OMITTED: dict[tuple[str, str, str], str] = {
    ("ledger", "Step", "index"): "derived state (rank of the start time), recomputed when a "
    "late span arrives; only facts are logged",
    ("ledger", "Payload", "*"): "payload bytes are committed to through the content hashes "
    "that run and step entries carry",
    ("openapi", "Payload", "*"): "served as {hash, value} by /api/v1/payloads/{hash}, not as "
    "a record",
    ("otlp", "Run", "project"): "not sent over OTLP: the server assigns the project of the "
    "ingest key that sent the run",
}

# Fields announced as pinned interfaces (docs: TEAM board, "Interfaces pinned now") that may not
# be on main yet: their omissions above are not stale while the field is absent.
PENDING_FIELDS = {("Run", "project")}

# Columns a store keeps for its own bookkeeping, not a record's field: column -> why.
STORAGE_COLUMNS: dict[str, str] = {
    "part_day": "PostgreSQL's time-partition key of runs and steps (store/_pgpart.py): which "
    "partition holds the row, decided once per run; never read back as a field",
}

# Enumerations: (record, field) -> the model's constant. The OpenAPI schema of that field, when
# it has an enum, must list exactly these values.
ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("Run", "status"): model.RUN_STATUSES,
    ("Step", "kind"): model.STEP_KINDS,
    ("Step", "status"): typing.get_args(model.StepStatus),
    ("Finding", "severity"): model.SEVERITIES,
    ("Edge", "kind"): model.EDGE_KINDS,
    ("Edge", "evidence"): model.EDGE_EVIDENCE,
}


def fields_of(record: type) -> list[str]:
    return [f.name for f in dataclasses.fields(record)]


def view_name(view: str, record: type, name: str) -> str:
    return RENAMES.get((view, record.__name__, name), name)


def expected_names(view: str, record: type) -> set[str]:
    """The names ``view`` should carry for ``record``: its fields, renamed, minus omissions."""
    return {
        view_name(view, record, n)
        for n in fields_of(record)
        if (view, record.__name__, n) not in OMITTED
    }


def covered(view: str, record: type) -> bool:
    return (view, record.__name__, "*") not in OMITTED


# -- sample records --------------------------------------------------------------------------

_counter = itertools.count(1)

# Values with a format (ids are hex for OTLP, enumerations take their first non-default value).
_FORMATTED: dict[str, Any] = {
    "id": lambda rec: "a" * 32 if rec in (Run,) else ("b" * 16 if rec is Step else "c" * 32),
    "run_id": lambda rec: "a" * 32,
    "parent_id": lambda rec: "d" * 16,
    "failed_step_id": lambda rec: "b" * 16,
    "step_id": lambda rec: "b" * 16,
    "origin_step_id": lambda rec: "b" * 16,
    "source": lambda rec: "d" * 16 if rec is Edge else "source-sample",
    "target": lambda rec: "b" * 16,
    "hash": lambda rec: "e" * 64,
    "input_hash": lambda rec: "1" * 64,
    "output_hash": lambda rec: "2" * 64,
}


def _enum_sample(record: type, name: str, default: Any) -> Any:
    values = ENUMS.get((record.__name__, name))
    if not values:
        return None
    return next(v for v in reversed(values) if v != default)


def _value(record: type, f: dataclasses.Field[Any], hint: Any) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else None
    enum = _enum_sample(record, f.name, default)
    if enum is not None:
        return enum
    if f.name in _FORMATTED:
        return _FORMATTED[f.name](record)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = args[0]
    n = next(_counter)
    if hint is bool:
        return not default
    if hint is int:
        return 1_000_000_000 * n + n
    if hint is float:
        return n + 0.25
    if hint is str:
        return f"{f.name}-{n}"
    if hint is bytes:
        return b'{"sample":%d}' % n
    if hint is ErrorInfo:
        return ErrorInfo(
            type="ValueError", message=f"m{n}", traceback=f"tb{n}", origin_step_id="b" * 16
        )
    if typing.get_origin(hint) is dict:
        return {f"{f.name}.key": f"value-{n}", "n": n}
    raise AssertionError(
        f"{record.__name__}.{f.name}: no sample value for type {hint!r}; teach _value"
    )


def sample(record: type) -> Any:
    """An instance of ``record`` with every field set, none to its default."""
    hints = typing.get_type_hints(record)
    values = {f.name: _value(record, f, hints[f.name]) for f in dataclasses.fields(record)}
    if record is Step:
        values["index"] = 1  # the only step of its run: rank 1, which the store recomputes
    if record is Payload:
        values["size"] = len(values["data"])
    return record(**values)


def sample_batch() -> Batch:
    run, step, edge, payload, finding = (sample(r) for r in RECORDS)
    return Batch(runs=[run], steps=[step], edges=[edge], payloads=[payload], findings=[finding])


def test_samples_set_every_field() -> None:
    for record in RECORDS:
        s = sample(record)
        for f in dataclasses.fields(record):
            value = getattr(s, f.name)
            assert value is not None, f"{record.__name__}.{f.name} sample is None"
            if f.default is not dataclasses.MISSING:
                assert value != f.default, f"{record.__name__}.{f.name} sample is the default"


# -- the model's own literals ----------------------------------------------------------------


def test_literal_types_match_the_constants() -> None:
    assert typing.get_args(model.RunStatus) == model.RUN_STATUSES
    assert typing.get_args(model.Severity) == model.SEVERITIES


# -- SQL: the tables of a freshly migrated store, and the row mappers -------------------------


def _sql_round_trip(store: Any, columns: Any) -> None:
    batch = sample_batch()
    store.write(batch)
    for record in RECORDS:
        table = TABLES[record]
        have = set(columns(table)) - set(STORAGE_COLUMNS)
        want = expected_names("sql", record)
        assert have == want, (
            f"table {table} has columns {sorted(have - want)} the model's {record.__name__} "
            f"lacks, and lacks {sorted(want - have)}: add a core migration in store/schema.py "
            "(store/_columns.py generates the rest; a rename goes to its RENAMES and this test's)"
        )
    run, step, edge, payload, finding = (
        batch.runs[0],
        batch.steps[0],
        batch.edges[0],
        batch.payloads[0],
        batch.findings[0],
    )
    assert store.get_run(run.id) == run
    assert store.get_steps(run.id) == [step]
    assert store.get_edges(run.id) == [edge]
    assert store.get_findings(run.id) == [finding]
    with store.read() as tx:
        cols = [view_name("sql", Payload, n) for n in fields_of(Payload)]
        row = tx.fetchone(f"SELECT {', '.join(cols)} FROM payloads WHERE hash = ?", (payload.hash,))
    assert row is not None
    hints = typing.get_type_hints(Payload)
    stored = {n: hints[n](v) for n, v in zip(fields_of(Payload), row, strict=True)}
    assert Payload(**stored) == payload


def test_sqlite_tables_and_rows_match_the_model(tmp_path: Path) -> None:
    from flightlog.app import open_store

    store = open_store(f"sqlite:///{tmp_path / 'schema.db'}")
    try:

        def columns(table: str) -> Iterator[str]:
            with store.read() as tx:
                for row in tx.fetchall(f"PRAGMA table_info({table})"):
                    yield row[1]

        _sql_round_trip(store, lambda t: list(columns(t)))
    finally:
        store.close()


def test_postgres_tables_and_rows_match_the_model(pg_url: str) -> None:
    from flightlog.app import open_store

    store = open_store(pg_url)
    try:

        def columns(table: str) -> list[str]:
            with store.read() as tx:
                rows = tx.fetchall(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = ?",
                    (table,),
                )
            return [r[0] for r in rows]

        _sql_round_trip(store, columns)
    finally:
        store.close()


# -- OpenAPI: the record schemas and their enumerations --------------------------------------


def _openapi() -> dict[str, Any]:
    from flightlog.server.openapi import document

    return document("test")


def _openapi_type(hint: Any) -> tuple[str, bool]:
    """(OpenAPI type, nullable) of a dataclass field's type hint."""
    nullable = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        hint = args[0]
    if typing.get_origin(hint) is dict or dataclasses.is_dataclass(hint):
        return "object", nullable
    names = {str: "string", int: "integer", float: "number", bool: "boolean", bytes: "string"}
    return names[hint], nullable


@pytest.mark.parametrize("record", [r for r in RECORDS if covered("openapi", r)], ids=repr)
def test_openapi_record_schema_matches_the_model(record: type) -> None:
    schema = _openapi()["components"]["schemas"][record.__name__]
    props = schema["properties"]
    want = expected_names("openapi", record)
    assert set(props) == want, (
        f"OpenAPI {record.__name__} has {sorted(set(props) - want)} the model lacks and lacks "
        f"{sorted(want - set(props))} (server/openapi.py)"
    )
    assert set(schema.get("required", [])) <= want
    hints = typing.get_type_hints(record)
    for name in fields_of(record):
        if name not in props:
            continue
        kind, nullable = _openapi_type(hints[name])
        assert props[name].get("type") == kind, f"{record.__name__}.{name}: {props[name]}"
        assert bool(props[name].get("nullable")) == nullable, f"{record.__name__}.{name}"
        values = ENUMS.get((record.__name__, name))
        if "enum" in props[name]:
            assert values is not None, f"{record.__name__}.{name} has an enum the model lacks"
            assert tuple(props[name]["enum"]) == values, f"{record.__name__}.{name}"


def test_openapi_error_info_matches_the_model() -> None:
    run = _openapi()["components"]["schemas"]["Run"]["properties"]["error"]
    assert set(run["properties"]) == set(fields_of(ErrorInfo))


def _enums(node: Any, where: str = "") -> Iterator[tuple[str, list[Any]]]:
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            yield where, node["enum"]
        for k, v in node.items():
            yield from _enums(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _enums(v, f"{where}/{i}")


def test_openapi_run_status_enumerations_are_the_models() -> None:
    """Every enum in the document that lists a run status lists exactly ``RUN_STATUSES``."""
    found = [(w, e) for w, e in _enums(_openapi()) if "succeeded" in e]
    assert found, "the OpenAPI document names no run status enumeration"
    for where, values in found:
        assert tuple(values) == model.RUN_STATUSES, where


# -- ledger: the data of each record's entry -------------------------------------------------


def _ledger_data(record: Any) -> dict[str, Any]:
    from flightlog.ledger import entry

    functions = {
        Run: entry.run_data,
        Step: entry.step_data,
        Edge: entry.edge_data,
        Finding: entry.finding_data,
    }
    data: dict[str, Any] = functions[type(record)](record)
    return data


@pytest.mark.parametrize("record", [r for r in RECORDS if covered("ledger", r)], ids=repr)
def test_ledger_entry_carries_every_field(record: type) -> None:
    data = _ledger_data(sample(record))
    want = expected_names("ledger", record)
    assert set(data) == want, (
        f"ledger entry of {record.__name__} has {sorted(set(data) - want)} the model lacks and "
        f"lacks {sorted(want - set(data))}: add it to ledger/entry.py or to OMITTED with why"
    )
    assert all(v is not None for v in data.values()), data


# -- OTLP: encode then decode gives every field back -----------------------------------------


def test_otlp_round_trip_carries_every_field() -> None:
    from flightlog.otel.decode import decode
    from flightlog.otel.encode import encode_bytes

    batch = sample_batch()
    result = decode(encode_bytes(batch, service="svc"), "application/x-protobuf")
    back = result.batch
    pairs: list[tuple[Any, Any]] = [
        (batch.runs[0], next(r for r in back.runs if r.id == batch.runs[0].id)),
        (batch.steps[0], back.steps[0]),
        (batch.edges[0], back.edges[0]),
        (batch.payloads[0], back.payloads[0]),
        (batch.findings[0], back.findings[0]),
    ]
    for sent, got in pairs:
        record = type(sent)
        lost = [
            n
            for n in fields_of(record)
            if ("otlp", record.__name__, n) not in OMITTED and getattr(sent, n) != getattr(got, n)
        ]
        assert not lost, (
            f"{record.__name__} fields {lost} do not survive OTLP encode -> decode "
            "(otel/encode.py, otel/decode.py, otel/conventions.py)"
        )


# -- the exception lists stay true -----------------------------------------------------------


def test_omissions_are_current() -> None:
    """Every entry of OMITTED and RENAMES names a real field (the lists may only shrink)."""
    by_name = {r.__name__: r for r in RECORDS}
    for view, rec, name in [*OMITTED, *RENAMES]:
        assert view in ("sql", "openapi", "ledger", "otlp"), view
        assert rec in by_name, rec
        if name == "*" or (rec, name) in PENDING_FIELDS:
            continue
        assert name in fields_of(by_name[rec]), f"{view}/{rec}.{name}: no such field any more"
