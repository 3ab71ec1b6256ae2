"""The public surface is exactly __all__, and `import flightlog` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import flightlog

HEAVY = [
    "starlette",
    "uvicorn",
    "psycopg",
    "opentelemetry",
    "google.protobuf",
    "httpx",
    "cryptography",
    "click",
    "sqlite3",
    "asyncio",
    "email",  # flightlog._retry's Retry-After parsing: loaded when a write is retried
    "msgspec",
    # The SDK's writer reaches these when it is configured, not when flightlog is imported.
    "flightlog.pipeline",
    "flightlog.store",
    "flightlog.privacy",
    "flightlog.ledger",
    "flightlog.config",
]


def test_all_names_exist_and_are_public() -> None:
    for name in flightlog.__all__:
        assert hasattr(flightlog, name), name
    public = {n for n in dir(flightlog) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(flightlog, n)).__name__ == "module"}
    # Nothing public beyond __all__ (sub-packages and the `annotations` future import aside).
    assert public - modules - {"annotations"} == set(flightlog.__all__) - {"__version__"}


def test_design_names_present() -> None:
    for name in ("configure", "step", "run", "check", "flush", "usage", "stats"):
        assert callable(getattr(flightlog, name))


def test_import_flightlog_loads_no_heavy_package() -> None:
    code = (
        "import sys, json; import flightlog; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
