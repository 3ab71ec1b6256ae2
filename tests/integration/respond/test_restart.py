"""A restart neither loses a pending notification nor sends a delivered one twice:
``flightlog watch`` in a subprocess, SIGKILLed, then restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flightlog.app import open_store
from flightlog.respond.outbox import list_outbox
from flightlog.respond.schema import ensure_schema

from .conftest import Receiver, claims_run, write_config

pytestmark = pytest.mark.slow

ROUTE = 'group_wait = "0s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'


def flightlog_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "flightlog", *args]


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def start_watch(url: str, config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        flightlog_cmd("watch", "--db", url, "--config", str(config), "--interval", "0.2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )


def outbox_statuses(url: str) -> dict[str, tuple[str, int]]:
    store = open_store(url)
    try:
        ensure_schema(store)
        return {e.channel: (e.status, e.attempts) for e in list_outbox(store)}
    finally:
        store.close()


def watch_once_until_delivered(url: str, config: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        subprocess.run(
            flightlog_cmd("watch", "--once", "--db", url, "--config", str(config)),
            check=True,
            capture_output=True,
        )
        statuses = outbox_statuses(url)
        if statuses and all(s == "delivered" for s, _ in statuses.values()):
            return
        time.sleep(0.5)
    raise AssertionError(f"not delivered: {outbox_statuses(url)}")


def test_sigkill_with_pending_notifications_delivers_once_after_restart(
    recorded_both: str, receiver: Receiver, tmp_path: Path
) -> None:
    recorded = recorded_both
    import flightlog

    config = write_config(tmp_path / "f.toml", receiver, route=ROUTE)
    port = receiver.port
    receiver.stop()  # the receivers are down: notifications stay pending
    claims_run("flooded basement", broken=True)
    flightlog.flush()
    proc = start_watch(recorded, config)
    try:
        wait_for(
            lambda: (
                bool(outbox_statuses(recorded))
                and all(s == "pending" and n >= 1 for s, n in outbox_statuses(recorded).values())
            )
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert set(outbox_statuses(recorded)) == {"search-pd", "claims-slack", "claims-hook"}
    receiver.port = port
    receiver.start()
    watch_once_until_delivered(recorded, config)
    # each notification arrived exactly once; another pass sends nothing again
    subprocess.run(
        flightlog_cmd("watch", "--once", "--db", recorded, "--config", str(config)),
        check=True,
        capture_output=True,
    )
    for path in ("/v2/enqueue", "/slack/T000/B000/secret", "/claims"):
        assert len(receiver.all(path)) == 1, path
    out = subprocess.run(
        flightlog_cmd("alerts", "--db", recorded), check=True, capture_output=True, text=True
    ).stdout
    assert out.count("delivered") == 3


def test_sigkill_between_send_and_mark_resends_with_the_same_idempotency_key(
    recorded: str, receiver: Receiver, tmp_path: Path
) -> None:
    """The honest at-least-once boundary: killed after the receiver got the request but before
    the outbox recorded it, the message is sent again after restart with the same key."""
    import flightlog

    config = write_config(tmp_path / "f.toml", receiver, route=ROUTE)
    receiver.script["/claims"] = [0]  # the first request hangs: the sender is mid-send
    receiver.hang_s = 5
    claims_run("flooded basement", broken=True)
    flightlog.flush()
    proc = start_watch(recorded, config)
    try:
        wait_for(lambda: any(p == "/claims" for p, _ in receiver.arrivals))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert outbox_statuses(recorded)["claims-hook"][0] == "sending"
    watch_once_until_delivered(recorded, config)
    arrivals = [k for p, k in receiver.arrivals if p == "/claims"]
    assert len(arrivals) == 2 and arrivals[0] == arrivals[1] != ""
    assert len(receiver.delivered("/claims")) == 1
    # messages already delivered before the kill were not sent again
    assert len(receiver.all("/v2/enqueue")) == 1
