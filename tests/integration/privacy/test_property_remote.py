"""Property, through the remote SDK: it scrubs before anything leaves the process, the server
it sends to scrubs again, and what is stored is exactly what the reference scrubber (no
screen at all) makes of the captured values; nested attributes and payloads with secrets at
any depth, harmless values under the same keys first (``test_property_capture`` holds the
embedded SDK and OTLP paths)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given

import flightlog
from flightlog.payload import encode_value
from flightlog.sdk.context import _json_safe
from tests.integration.privacy.test_property_capture import (
    CASES,
    REFERENCE,
    _payload,
    _record,
    _row,
)
from tests.integration.server.conftest import ServerProcess, free_port
from tests.unit.privacy.secret_trees import harmless_twin, json_values, mappings


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("remote")
    server = ServerProcess(root / "server.db", free_port()).start()
    flightlog.configure(server.url, spool_dir=str(root / "spool"))
    try:
        yield server.db
    finally:
        flightlog.shutdown()
        server.stop()


@CASES
@given(mappings(), mappings(), mappings(), json_values(), json_values())
def test_remote_sdk_and_server_store_the_reference(
    remote: Path, run_case: tuple, step_case: tuple, note_case: tuple, inp: tuple, out: tuple
) -> None:
    cases = (run_case, step_case, note_case, inp, out)
    _record(*(harmless_twin(c[0]) for c in cases))
    run_id = _record(*(c[0] for c in cases))

    run_attrs, run_in = _row(remote, "SELECT attributes, input_hash FROM runs WHERE id = ?", run_id)
    step_attrs, step_out = _row(
        remote,
        "SELECT attributes, output_hash FROM steps WHERE run_id = ? AND name = ?",
        run_id,
        "tool",
    )
    assert orjson.loads(run_attrs) == REFERENCE.mapping(_json_safe(run_case[0]))
    assert orjson.loads(step_attrs) == REFERENCE.mapping(
        {**_json_safe(step_case[0]), **_json_safe(note_case[0])}
    )
    assert _payload(remote, run_in) == REFERENCE.json(orjson.loads(encode_value(inp[0])))
    assert _payload(remote, step_out) == REFERENCE.json(orjson.loads(encode_value(out[0])))
