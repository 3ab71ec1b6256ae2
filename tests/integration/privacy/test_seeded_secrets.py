"""Secrets seeded in every field, through the SDK and through OTLP to a real server, are
nowhere on disk in clear: not in the SQLite file, its WAL or free pages, not in the SDK's
spool, the server's log or the SDK's log, not in ledger entries or openings. Names (which no
detector can know) are stored, then gone after `flightlog audit redact`, with every proof
still verifying."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import flightlog
from tests.integration.server.conftest import ServerProcess, free_port


def _rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _card() -> str:
    """A random Luhn-valid Visa number."""
    digits = [4] + [secrets.randbelow(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


class Seeds:
    """Fresh secrets for one test, and the texts that carry them."""

    def __init__(self) -> None:
        up = string.ascii_uppercase + string.digits
        card = _card()
        self.secrets = {
            "openai": f"sk-proj-{_rand(40)}",
            "anthropic": f"sk-ant-api03-{_rand(40)}",
            "aws": f"AKIA{_rand(16, up)}",
            "github": f"ghp_{_rand(36)}",
            "stripe": f"sk_live_{_rand(24)}",
            "slack": f"xoxb-{_rand(12, string.digits)}-{_rand(24)}",
            "jwt": f"eyJ{_rand(20)}.eyJ{_rand(30)}.{_rand(30)}",
            "bearer": _rand(32),
            "url_password": f"pw{_rand(14)}",
            "url_param": f"k{_rand(20)}",
            "header_value": f"opaque{_rand(18)}",  # only its key says it is a secret
            "email": f"zeb.{_rand(8).lower()}@example.org",
            "phone": f"+44 20 7946 {secrets.randbelow(9000) + 1000}",
            "card": card,
            "card_spaced": " ".join(card[i : i + 4] for i in range(0, 16, 4)),
            "iban": "DE89370400440532013000",
            "password": f"hunter{_rand(10)}",
            # only the key names these, inside JSON *text* (tool arguments and results,
            # messages as serialised JSON, JSON inside JSON, a key written with an escape)
            "json_credential": f"opaque{_rand(18)}",
            "json_nested": f"opaque{_rand(18)}",
            "json_escaped_key": f"opaque{_rand(18)}",
            "json_tool_args": f"opaque{_rand(18)}",
            # after a marker-like prefix; a card number in full-width digits
            "bracketed": f"hunter{_rand(10)}",
            "card_fullwidth": " ".join(
                "".join(chr(0xFF10 + int(c)) for c in card[i : i + 4]) for i in range(0, 16, 4)
            ),
        }
        # A name no detector can recognise: kept at capture, erased by `audit redact`.
        self.name = f"Quackenbush{_rand(10)}"
        s = self.secrets
        self.prompt = (
            f"my key is {s['openai']} and {s['anthropic']}; write to {s['email']} or call "
            f"{s['phone']}; card {s['card_spaced']}, IBAN {s['iban']}; customer {self.name}; "
            f"other card {s['card_fullwidth']}"
        )
        # a tool call's arguments as JSON text (what the SDK and OTLP both carry as a string)
        self.tool_args = (
            '{"query": "water damage", "payload": "{\\"client_secret\\": \\"'
            + s["json_tool_args"]
            + '\\"}"}'
        )
        self.url = f"https://svc:{s['url_password']}@api.example.com/v1?api_key={s['url_param']}"
        self.attributes = {
            "http.request.header.authorization": f"Bearer {s['bearer']}",
            "http.request.header.x-api-key": s["header_value"],
            "url.full": self.url,
            "cloud.creds": f"{s['aws']} {s['github']}",
            "customer.name": self.name,
            "tool.arguments": f'{{"credential": "{s["json_credential"]}", "query": "x"}}',
            "llm.output_messages": (
                '[{"role": "assistant", "tool_calls": [{"function": {"name": "login", '
                '"arguments": "{\\"refreshToken\\": \\"' + s["json_nested"] + '\\"}"}}]}]'
            ),
            "tool.result": '{"\\u0070assword": "' + s["json_escaped_key"] + '"}',
        }
        self.error = (
            f"login failed for {s['email']} ({self.name}) with password={s['password']} "
            f"token {s['jwt']} card {s['card']}; retried with password=[redacted]{s['bracketed']}"
        )
        self.check = f"refund to {s['iban']} for {self.name} via {s['stripe']} / {s['slack']}"

    def forms(self) -> dict[str, bytes]:
        """Every secret as bytes, in the forms that could reach a file."""
        out = {k: v.encode() for k, v in self.secrets.items()}
        out["iban_spaced"] = " ".join(
            self.secrets["iban"][i : i + 4] for i in range(0, 22, 4)
        ).encode()
        return out


def _raw_files(paths: list[Path]) -> dict[Path, bytes]:
    out: dict[Path, bytes] = {}
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file():
                    out[f] = f.read_bytes()
        elif p.exists():
            out[p] = p.read_bytes()
    return out


def _found(files: dict[Path, bytes], needles: dict[str, bytes]) -> list[str]:
    return [
        f"{name} in {path.name}"
        for name, n in needles.items()
        for path, b in files.items()
        if n in b
    ]


def _db_files(db: Path) -> list[Path]:
    return [db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")]


def _ledger_text(db: Path) -> dict[Path, bytes]:
    """Every ledger entry and opening, read through SQLite (the values as stored)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT entry, openings FROM ledger_entries").fetchall()
    finally:
        conn.close()
    blob = b"\n".join(bytes(e or b"") + b"\n" + bytes(o or b"") for e, o in rows)
    return {db.with_name("ledger_entries"): blob}


def _fl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "flightlog", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
    )


@pytest.fixture
def sdk_log(tmp_path: Path) -> Iterator[Path]:
    """Everything the SDK logs, at every level, into a file."""
    path = tmp_path / "sdk.log"
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger("flightlog")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield path
    logger.removeHandler(handler)
    logger.setLevel(old)
    handler.close()


def _record_with_sdk(seeds: Seeds) -> str:
    """One run seeding every SDK field: run input, step inputs and outputs, attributes,
    an exception, a failed check, the run's failure reason."""

    @flightlog.step(kind="tool", agent="caller")
    def call_api(url: str, prompt: str) -> dict[str, str]:
        flightlog.annotate(**seeds.attributes)
        return {"echo": prompt, "next": url}

    @flightlog.step(kind="tool", agent="login")
    def login(user: str) -> None:
        raise PermissionError(seeds.error)

    with flightlog.run(
        "seeded",
        input={"prompt": seeds.prompt, "password": "x" + _rand(9), "args": seeds.tool_args},
    ) as run:
        call_api(seeds.url, seeds.prompt)
        flightlog.check(False, "refund_ok", seeds.check)
        with contextlib.suppress(PermissionError):
            login(seeds.secrets["email"])
        run.fail(f"gave up on {seeds.secrets['email']} ({seeds.name}) at {seeds.url}")
    return run.id


def _redact_and_verify(db: Path, run_id: str) -> None:
    url = f"sqlite:///{db}"
    out = _fl("audit", "redact", "--run", run_id, "--db", url, "--reason", "erasure request")
    assert out.returncode == 0, out.stderr
    verified = _fl("audit", "verify", "--db", url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_sdk_embedded_store(tmp_path: Path, sdk_log: Path) -> None:
    seeds = Seeds()
    db = tmp_path / "flightlog.db"
    flightlog.configure(f"sqlite:///{db}")
    try:
        run_id = _record_with_sdk(seeds)
        assert flightlog.flush()
    finally:
        flightlog.shutdown()
    files = _raw_files(_db_files(db)) | {sdk_log: sdk_log.read_bytes()} | _ledger_text(db)
    assert _found(files, seeds.forms()) == []
    # The search can find things: the name is stored until redaction.
    assert _found(files, {"name": seeds.name.encode()}) != []
    # What is shown says what was scrubbed.
    shown = _fl("show", run_id, "--db", f"sqlite:///{db}")
    assert "[redacted: email]" in shown.stdout, shown.stdout + shown.stderr

    _redact_and_verify(db, run_id)
    files = _raw_files(_db_files(db)) | _ledger_text(db)
    assert _found(files, seeds.forms() | {"name": seeds.name.encode()}) == []
    shown = _fl("show", run_id, "--db", f"sqlite:///{db}", "--json")
    assert "[redacted]" in shown.stdout and seeds.name not in shown.stdout


def test_remote_sdk_spools_only_scrubbed_records(tmp_path: Path, sdk_log: Path) -> None:
    """The remote SDK scrubs before anything leaves the process: what it spools while the
    server is down holds no secret, and the server it later drains into stores none."""
    seeds = Seeds()
    spool = tmp_path / "spool"
    port = free_port()
    flightlog.configure(f"http://127.0.0.1:{port}", spool_dir=str(spool))
    try:
        run_id = _record_with_sdk(seeds)
        # Durable in the spool but not delivered: flush() says so (False).
        assert flightlog.flush(hooks=False) is False
        spooled = _raw_files([spool])
        assert spooled, "nothing was spooled while the server was down"
        assert _found(spooled, seeds.forms()) == []
        server = ServerProcess(tmp_path / "server.db", port).start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _raw_files([spool]):
                time.sleep(0.2)
            assert flightlog.flush()
        finally:
            server.stop()
    finally:
        flightlog.shutdown()
    assert server.log is not None
    files = _raw_files(_db_files(server.db) + [spool, server.log, sdk_log]) | _ledger_text(
        server.db
    )
    assert _found(files, seeds.forms()) == []
    assert _found(files, {"name": seeds.name.encode()}) != []
    _redact_and_verify(server.db, run_id)
    files = _raw_files(_db_files(server.db)) | _ledger_text(server.db)
    assert _found(files, seeds.forms() | {"name": seeds.name.encode()}) == []


def test_otlp_to_a_real_server(tmp_path: Path) -> None:
    """OpenTelemetry spans (OpenInference input/output values, GenAI messages, HTTP headers
    and URLs as attributes, an exception event, an evaluation) through the real exporter."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    seeds = Seeds()
    server = ServerProcess(tmp_path / "flightlog.db", free_port()).start()
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "seeded-svc"}))
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=server.url + "/v1/traces"))
        )
        tracer = provider.get_tracer("seeded")
        with tracer.start_as_current_span("agent run") as root:
            root.set_attribute("input.value", seeds.prompt)
            root.set_attribute("openinference.span.kind", "AGENT")
            trace_id = format(root.get_span_context().trace_id, "032x")
            with tracer.start_as_current_span("chat") as llm:
                llm.set_attribute("gen_ai.operation.name", "chat")
                llm.set_attribute("gen_ai.request.model", "gpt-4o")
                llm.set_attribute(
                    "gen_ai.input.messages",
                    '[{"role": "user", "parts": [{"type": "text", "content": "'
                    + seeds.prompt
                    + '"}]}]',
                )
                llm.set_attribute("output.value", f"Sure, {seeds.name}: {seeds.url}")
                for k, v in seeds.attributes.items():
                    llm.set_attribute(k, v)
                llm.add_event(
                    "gen_ai.evaluation.result",
                    {
                        "gen_ai.evaluation.name": "policy",
                        "gen_ai.evaluation.score.label": "fail",
                        "gen_ai.evaluation.explanation": seeds.check,
                    },
                )
            with tracer.start_as_current_span("tool login") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.call.arguments", seeds.tool_args)
                tool.set_attribute("tool.call.url", seeds.url)
                tool.record_exception(PermissionError(seeds.error))
                tool.set_status(Status(StatusCode.ERROR, seeds.error))
            root.set_status(Status(StatusCode.ERROR, f"failed for {seeds.secrets['email']}"))
        provider.force_flush()
        provider.shutdown()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = httpx.get(f"{server.url}/api/v1/runs/{trace_id}", timeout=5)
            if r.status_code == 200 and len(r.json().get("steps", [])) >= 3:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the spans were not stored")
        api = httpx.get(f"{server.url}/api/v1/runs/{trace_id}", timeout=5).text
        assert "[redacted: email]" in api
    finally:
        server.stop()
    assert server.log is not None
    files = _raw_files(_db_files(server.db) + [server.log]) | _ledger_text(server.db)
    assert _found(files, seeds.forms()) == []
    assert _found(files, {"name": seeds.name.encode()}) != []
    _redact_and_verify(server.db, trace_id)
    files = _raw_files(_db_files(server.db)) | _ledger_text(server.db)
    assert _found(files, seeds.forms() | {"name": seeds.name.encode()}) == []
