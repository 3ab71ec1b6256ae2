"""Channel types are plug-ins: an installed package's entry point (group
``flightlog.channels``) adds one, and the engine delivers through it unchanged."""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import flightlog
from flightlog.app import open_store
from flightlog.errors import ConfigurationError
from flightlog.respond import channels
from flightlog.respond.clock import ManualClock
from flightlog.respond.config import load_respond_config
from flightlog.respond.engine import Engine
from flightlog.respond.outbox import list_outbox

from .conftest import Receiver, claims_run, write_config

PLUGIN = '''
import json
from pathlib import Path

from flightlog.respond.channels import Channel, DeliveryResult


class JsonLines(Channel):
    """Appends each message to a file (settings: path)."""

    name = "jsonl"
    settings = frozenset({"path"})

    def check(self, name, settings, secrets):
        return None if settings.get("path") else f"channel {name!r} needs path"

    def describe(self, channel):
        return f"jsonl {channel.settings['path']}"

    def body(self, channel, notice):
        return {"kind": notice.kind, "summaries": [a.summary for a in notice.alerts]}

    def send(self, channel, body, key):
        with Path(channel.settings["path"]).open("a") as f:
            f.write(json.dumps({"key": key, **body}) + "\\n")
        return DeliveryResult("delivered", 200)


JSONL = JsonLines()
'''


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[None]:
    """A package with a ``flightlog.channels`` entry point, installed on sys.path (its
    dist-info is what importlib.metadata reads, as for a pip-installed package)."""
    site = tmp_path / "site"
    (site / "flightlog_jsonl").mkdir(parents=True)
    (site / "flightlog_jsonl" / "__init__.py").write_text(PLUGIN)
    info = site / "flightlog_jsonl-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flightlog-jsonl\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[flightlog.channels]\njsonl = flightlog_jsonl:JSONL\nbroken = flightlog_jsonl:MISSING\n"
    )
    sys.path.insert(0, str(site))
    saved = dict(channels._types), channels._loaded, dict(channels._broken)
    channels._types.clear()
    channels._broken.clear()
    channels._loaded = False
    try:
        yield
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("flightlog_jsonl", None)
        channels._types.clear()
        channels._types.update(saved[0])
        channels._loaded = saved[1]
        channels._broken.clear()
        channels._broken.update(saved[2])


def test_the_built_in_channel_types_are_registered_as_plug_ins() -> None:
    types = channels.channel_types()
    assert {"webhook", "slack", "pagerduty", "email"} <= set(types)
    for name, t in types.items():
        assert isinstance(t, channels.ChannelType) and t.name == name
    assert types["pagerduty"].follows_transitions
    assert not types["webhook"].follows_transitions
    with pytest.raises(ConfigurationError, match="unknown channel type 'pigeon'.*webhook"):
        channels.channel_type("pigeon")


def test_an_installed_channel_type_delivers_through_the_engine(
    installed_plugin: None, recorded: str, receiver: Receiver, tmp_path: Path
) -> None:
    assert {"jsonl", "webhook", "pagerduty"} <= set(channels.channel_types())
    # a broken plug-in says why, and leaves the others working
    with pytest.raises(ConfigurationError, match="'broken'.*cannot be loaded.*MISSING"):
        channels.channel_type("broken")
    jsonl = channels.channel_type("jsonl")
    assert jsonl.check("file", {}, {}) == "channel 'file' needs path"
    out = tmp_path / "alerts.jsonl"
    path = write_config(tmp_path / "f.toml", receiver, route='group_wait = "0s"\n')
    # search-team is paged on "search-pd": make that channel a jsonl one, in the file.
    text = re.sub(
        r"\[channels\.search-pd\].*?\n\n",
        f'[channels.search-pd]\ntype = "jsonl"\npath = "{out}"\ntimeout = "2s"\n\n',
        path.read_text(),
        flags=re.S,
    )
    path.write_text(text)
    cfg = load_respond_config(path, environ={})
    assert cfg.channels["search-pd"].type == "jsonl"
    assert cfg.channels["search-pd"].describe() == f"jsonl {out}"
    # the plug-in's declared settings and its own check are enforced, with the line
    for bad, problem in (
        ('path = ""', "channel 'search-pd' needs path"),
        (f'path = "{out}"\ncolour = "red"', "unknown setting 'colour'"),
    ):
        path.write_text(text.replace(f'path = "{out}"', bad))
        with pytest.raises(ConfigurationError, match=f"f.toml line \\d+: .*{problem}"):
            load_respond_config(path, environ={})
    path.write_text(text)
    engine = Engine(open_store(recorded), cfg, clock=ManualClock(), rng=random.Random(7))

    for i in range(3):
        claims_run(f"flooded basement {i}", broken=True)
    flightlog.flush()
    engine.process_runs(engine.pending_runs())
    engine.tick()

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["kind"] == "notify"
    assert "root cause search_policy" in lines[0]["summaries"][0]
    (entry,) = [e for e in list_outbox(engine.store) if e.channel == "search-pd"]
    assert entry.status == "delivered" and entry.channel_type == "jsonl"
    assert lines[0]["key"] == entry.id
    # The other teams' built-in channels still deliver as before.
    assert receiver.delivered("/claims")
