"""The response layer end to end: SDK-recorded runs -> incidents -> routed, grouped,
inhibited, silenced, escalated notifications -> real receivers on loopback."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import flightlog
from flightlog.app import open_store
from flightlog.respond.clock import ManualClock
from flightlog.respond.config import load_respond_config
from flightlog.respond.engine import Engine
from flightlog.respond.outbox import list_outbox

from .conftest import Receiver, claims_run, write_config

FAST = 'group_wait = "30s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'
ROUTE0 = 'group_wait = "0s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'


def make_engine(url: str, config: Path, clock: ManualClock, **kw: Any) -> Engine:
    store = open_store(url)
    return Engine(
        store, load_respond_config(config, environ={}), clock=clock, rng=random.Random(7), **kw
    )


def step(engine: Engine) -> Any:
    engine.process_runs(engine.pending_runs())
    return engine.tick()


def fail_runs(n: int, **kw: Any) -> list[str]:
    ids = [claims_run(f"flooded basement {i}", **kw) for i in range(n)]
    flightlog.flush()
    return ids


def test_100_failures_one_page_then_updates_per_group_interval(
    recorded_both: str, receiver: Receiver, tmp_path: Path
) -> None:
    recorded = recorded_both
    clock = ManualClock()
    engine = make_engine(recorded, write_config(tmp_path / "f.toml", receiver, route=FAST), clock)
    first = fail_runs(10, broken=True)
    step(engine)
    assert receiver.requests == []  # group_wait not over yet
    clock.advance(30)
    step(engine)
    pages = receiver.delivered("/v2/enqueue")
    assert len(pages) == 1
    page = pages[0].body
    assert page["event_action"] == "trigger"
    assert page["routing_key"] == "search-routing-key-0123456789abcd"
    dedup = page["dedup_key"]

    # 90 more failures of the same fingerprint: no new page before group_interval
    fail_runs(90, broken=True)
    step(engine)
    clock.advance(60)
    step(engine)
    assert len(receiver.delivered("/v2/enqueue")) == 1
    clock.advance(240)  # 5 minutes after the first notification
    step(engine)
    pages = receiver.delivered("/v2/enqueue")
    assert len(pages) == 2 and pages[1].body["dedup_key"] == dedup
    assert pages[1].body["payload"]["custom_details"]["affected_runs"] == "100"
    # nothing changed: no more notifications until repeat_interval
    clock.advance(600)
    step(engine)
    assert len(receiver.delivered("/v2/enqueue")) == 2
    store = open_store(recorded)
    with store.read() as tx:
        incidents = tx.fetchall("SELECT id, run_count, status FROM respond_incidents")
    assert incidents == [(1, 100, "triggered")]

    # the root-cause owner is paged with the attribution ...
    details = page["payload"]["custom_details"]
    assert page["payload"]["source"] == "claims-triage"
    assert page["payload"]["component"] == "search_policy"
    assert page["payload"]["group"] == "search-team"
    assert "failed at step 3 of 3 (validate_claim)" in page["payload"]["summary"]
    assert "root cause search_policy (agent retriever)" in page["payload"]["summary"]
    assert details["label.role"] == "root_cause"
    assert details["report"].startswith("flightlog report ")
    assert details["run_id"] in first
    assert float(details["confidence"]) > 0
    assert details["evidence"]
    assert "paged as the owner of the root-cause step" in details["description"]
    # ... and the workflow's owner is notified (Slack + webhook), each once per flush
    slack = receiver.delivered("/slack/T000/B000/secret")
    hook = receiver.delivered("/claims")
    assert len(slack) == 2 and len(hook) == 2
    text = slack[0].body["text"]
    assert "notified as the owner of the workflow" in text
    assert "failed at step 3 of 3 (validate_claim)" in text
    assert "step 1 search_policy (agent retriever, owner search-team)" in text
    assert "Runs affected: 10" in text and "flightlog report " in text
    assert slack[0].body["blocks"][0]["type"] == "header"
    am = hook[0].body
    assert am["version"] == "4" and am["status"] == "firing"
    assert am["groupKey"] and am["groupLabels"] == {"incident": "1"}
    assert am["commonLabels"]["workflow"] == "claims-triage"
    alert = am["alerts"][0]
    assert alert["labels"]["role"] == "workflow_owner" and alert["labels"]["team"] == "claims-team"
    assert alert["labels"]["step"] == "search_policy" and alert["labels"]["agent"] == "retriever"
    assert alert["startsAt"].endswith("Z") and alert["annotations"]["affected_runs"] == "10"
    assert hook[1].body["alerts"][0]["annotations"]["affected_runs"] == "100"
    # the platform (catch-all) team hears nothing: it owns neither step nor workflow
    assert receiver.all("/ops") == []
    # every request carries an idempotency key, distinct per notification
    keys = [r.headers["Idempotency-Key"] for r in receiver.requests]
    assert len(keys) == len(set(keys))


def test_downstream_symptom_is_inhibited(recorded: str, receiver: Receiver, tmp_path: Path) -> None:
    clock = ManualClock()
    engine = make_engine(recorded, write_config(tmp_path / "f.toml", receiver, route=FAST), clock)
    fail_runs(3, broken=True)  # root cause search_policy, fails at validate_claim
    fail_runs(3, strict=True)  # the validator fails by itself: a symptom downstream
    step(engine)
    clock.advance(30)
    result = step(engine)
    store = open_store(recorded)
    with store.read() as tx:
        rows = tx.fetchall("SELECT id, root_cause_step FROM respond_incidents ORDER BY id")
    assert [r[1] for r in rows] == ["search_policy", "validate_claim"]
    symptom = rows[1][0]
    assert any(k.startswith(f"{symptom}/") and "upstream" in v for k, v in result.muted.items())
    hooks = receiver.delivered("/claims")
    assert len(hooks) == 1
    assert [a["labels"]["incident"] for a in hooks[0].body["alerts"]] == ["1"]
    from flightlog.respond.incidents import timeline

    with store.read() as tx:
        muted = [e for e in timeline(tx, symptom) if e.kind == "muted"]
    assert len(muted) == 1  # its page (its owner also owns the workflow: no second alert)
    assert "incident #1: root cause search_policy is upstream" in muted[0].detail["reason"]

    # once the upstream incident is resolved, the symptom is no longer explained: it is told
    engine.transition(1, "resolved", actor="alice")
    step(engine)
    clock.advance(30)  # its group waits group_wait from when it first became visible
    step(engine)
    told = [
        a["labels"]["incident"]
        for r in receiver.delivered("/claims")
        for a in r.body["alerts"]
        if a["status"] == "firing"
    ]
    assert str(symptom) in told
    with store.read() as tx:
        assert [e.kind for e in timeline(tx, symptom)].count("unmuted") == 1


def test_silence_mutes_then_expires(recorded: str, receiver: Receiver, tmp_path: Path) -> None:
    clock = ManualClock()
    ends = dt.datetime.fromtimestamp(clock.now_ns() / 1e9 + 600, tz=dt.UTC)
    extra = (
        f"\n[[silences]]\nmatchers = ['workflow=\"claims-triage\"', 'role=~\"root_.*\"']\n"
        f'ends = {ends.strftime("%Y-%m-%dT%H:%M:%SZ")}\ncomment = "retriever migration"\n'
    )
    engine = make_engine(
        recorded, write_config(tmp_path / "f.toml", receiver, route=FAST, extra=extra), clock
    )
    fail_runs(2, broken=True)
    step(engine)
    clock.advance(60)
    result = step(engine)
    assert receiver.delivered("/v2/enqueue") == []  # the page is silenced ...
    assert "silenced by config-1 (retriever migration)" in result.muted["1/root_cause"]
    assert len(receiver.delivered("/claims")) == 1  # ... the workflow owner's notice is not
    clock.advance(300)
    step(engine)
    assert receiver.delivered("/v2/enqueue") == []
    clock.advance(300)  # the silence has expired: the page's group starts its group_wait
    step(engine)
    clock.advance(30)
    step(engine)
    assert len(receiver.delivered("/v2/enqueue")) == 1


def test_unacknowledged_page_escalates_and_ack_stops_it(
    recorded: str, receiver: Receiver, tmp_path: Path
) -> None:
    clock = ManualClock()
    route = 'group_wait = "0s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'
    engine = make_engine(recorded, write_config(tmp_path / "f.toml", receiver, route=route), clock)
    fail_runs(1, broken=True)
    step(engine)
    assert len(receiver.delivered("/v2/enqueue")) == 1
    clock.advance(9 * 60)
    step(engine)
    assert receiver.delivered("/lead/v2/enqueue") == []
    clock.advance(60)  # 10 minutes unacknowledged
    step(engine)
    lead = receiver.delivered("/lead/v2/enqueue")
    assert len(lead) == 1
    assert lead[0].body["routing_key"] == "lead-routing-key-0123456789abcdef"
    assert lead[0].body["event_action"] == "trigger"
    clock.advance(3600)
    step(engine)
    assert len(receiver.delivered("/lead/v2/enqueue")) == 1  # one level, once

    # a second incident acknowledged in time does not escalate; PagerDuty hears "acknowledge"
    fail_runs(1, strict=True, workflow="claims-intake")
    step(engine)
    store = open_store(recorded)
    with store.read() as tx:
        (second,) = tx.fetchone("SELECT MAX(id) FROM respond_incidents")
    engine.transition(second, "acknowledged", actor="bob")
    clock.advance(3600)
    step(engine)
    assert len(receiver.delivered("/lead/v2/enqueue")) == 1


def test_500_and_429_are_retried_400_is_not_and_timeouts_retry(
    recorded: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.script["/claims"] = [500, 429]
    receiver.headers_out[429] = {"Retry-After": "20"}
    receiver.script["/slack/T000/B000/secret"] = [400]
    receiver.script["/v2/enqueue"] = [0]  # hangs past the 2 s timeout
    receiver.hang_s = 3
    clock = ManualClock()
    route = 'group_wait = "0s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'
    engine = make_engine(recorded, write_config(tmp_path / "f.toml", receiver, route=route), clock)
    fail_runs(1, broken=True)
    step(engine)
    store = open_store(recorded)
    by_channel = {e.channel: e for e in list_outbox(store)}
    assert by_channel["claims-hook"].status == "pending"
    assert by_channel["claims-hook"].response_code == 500
    assert by_channel["claims-slack"].status == "failed"
    assert by_channel["claims-slack"].attempts == 1
    assert "HTTP 400" in (by_channel["claims-slack"].last_error or "")
    assert by_channel["search-pd"].status == "pending"
    assert "timed out" in (by_channel["search-pd"].last_error or "")
    for _ in range(10):
        clock.advance(15)
        engine.tick()
    by_channel = {e.channel: e for e in list_outbox(store)}
    assert by_channel["claims-hook"].status == "delivered"
    assert by_channel["claims-hook"].attempts == 3
    assert by_channel["search-pd"].status == "delivered"
    slack = by_channel["claims-slack"]
    assert slack.status == "failed" and slack.attempts == 1
    assert [r.status for r in receiver.all("/claims")] == [500, 429, 200]
    assert [r.status for r in receiver.all("/slack/T000/B000/secret")] == [400]
    # the secret part of the Slack URL never reaches the outbox or its errors
    assert all("secret" not in (e.last_error or "") for e in list_outbox(store))


def test_receiver_down_for_a_minute_then_up_delivers_once(
    recorded: str, receiver: Receiver, tmp_path: Path
) -> None:
    clock = ManualClock()
    route = 'group_wait = "0s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'
    engine = make_engine(recorded, write_config(tmp_path / "f.toml", receiver, route=route), clock)
    receiver.stop()
    fail_runs(1, broken=True)
    for _ in range(7):  # a minute of failed attempts
        step(engine)
        clock.advance(10)
    store = open_store(recorded)
    pending = [e for e in list_outbox(store) if e.channel == "claims-hook"]
    assert pending[0].status == "pending" and pending[0].attempts >= 2
    assert "connection failed" in (pending[0].last_error or "")
    receiver.start()  # same port
    for _ in range(30):
        clock.advance(10)
        step(engine)
    assert len(receiver.all("/claims")) == 1
    assert len(receiver.all("/v2/enqueue")) == 1
    assert {e.status for e in list_outbox(store)} == {"delivered"}


def test_resolve_sends_pagerduty_resolve_with_same_dedup_key_and_reopen_links(
    recorded_both: str, receiver: Receiver, tmp_path: Path
) -> None:
    recorded = recorded_both
    clock = ManualClock()
    route = 'group_wait = "0s"\ngroup_interval = "1m"\nrepeat_interval = "4h"\n'
    engine = make_engine(recorded, write_config(tmp_path / "f.toml", receiver, route=route), clock)
    audits: list[tuple[str, dict[str, Any]]] = []
    engine.store.add_auditor(lambda tx, kind, data: audits.append((kind, data)))
    fail_runs(2, broken=True)
    step(engine)
    (trigger,) = receiver.delivered("/v2/enqueue")
    engine.transition(1, "acknowledged", actor="carol")
    # three consecutive successes resolve it automatically
    for i in range(3):
        claims_run(f"good claim {i}")
    flightlog.flush()
    step(engine)
    events = [r.body for r in receiver.delivered("/v2/enqueue")]
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {trigger.body["dedup_key"]}
    assert all(e["routing_key"] == "search-routing-key-0123456789abcd" for e in events)
    clock.advance(60)
    step(engine)  # the webhook receivers hear "resolved"
    last = receiver.delivered("/claims")[-1].body
    assert last["status"] == "resolved" and last["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"

    # the failure returns: a new incident, linked to the old one
    fail_runs(1, broken=True)
    step(engine)
    store = open_store(recorded)
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT id, status, previous_id, next_id, resolved_by "
            "FROM respond_incidents ORDER BY id"
        )
    assert rows == [(1, "resolved", None, 2, "auto"), (2, "triggered", 1, None, None)]
    new_trigger = receiver.delivered("/v2/enqueue")[-1].body
    assert new_trigger["event_action"] == "trigger"
    assert new_trigger["dedup_key"] != trigger.body["dedup_key"]
    kinds = [k for k, _ in audits]
    assert kinds.count("incident.transition") == 4  # opened, acked, resolved, opened
    assert "alert.sent" in kinds
    transitions = [d for k, d in audits if k == "incident.transition"]
    assert [(d["from"], d["to"]) for d in transitions] == [
        (None, "triggered"),
        ("triggered", "acknowledged"),
        ("acknowledged", "resolved"),
        (None, "triggered"),
    ]


def test_email_over_smtp(recorded: str, receiver: Receiver, smtp: Any, tmp_path: Path) -> None:
    box, port = smtp
    clock = ManualClock()
    route = 'group_wait = "0s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n'
    engine = make_engine(
        recorded, write_config(tmp_path / "f.toml", receiver, smtp_port=port, route=route), clock
    )
    fail_runs(1, broken=True)
    step(engine)
    assert len(box.messages) == 1
    msg = box.messages[0]
    assert msg["To"] == "claims-oncall@example.test"
    assert msg["Subject"].startswith("[FIRING] claims-triage failed at step 3 of 3")
    body = msg.get_payload(decode=True).decode()
    assert "Root cause: step 1 search_policy (agent retriever, owner search-team)" in body
    assert "flightlog report " in body
    (entry,) = [e for e in list_outbox(engine.store) if e.channel == "mail"]
    assert msg["Message-ID"] == f"<{entry.id}@flightlog>"


def test_two_engines_on_one_store_count_and_send_once(
    recorded_both: str, receiver: Receiver, tmp_path: Path
) -> None:
    """watch, the SDK hook and the server may work one store at once: each run is counted
    once and each notification sent once."""
    import threading

    config = write_config(tmp_path / "f.toml", receiver, route=ROUTE0)
    engines = [make_engine(recorded_both, config, ManualClock()) for _ in range(2)]
    fail_runs(20, broken=True)
    errors: list[BaseException] = []

    def work(engine: Engine) -> None:
        try:
            for _ in range(3):
                step(engine)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engines[0].store.read() as tx:
        assert tx.fetchall("SELECT run_count FROM respond_incidents") == [(20,)]
    keys = [k for _, k in receiver.arrivals]
    assert len(keys) == len(set(keys)) == 3  # page, Slack, webhook: once each


def test_alert_goes_out_even_when_attribution_fails(
    recorded: str, receiver: Receiver, tmp_path: Path
) -> None:
    def broken_why(store: Any, run_id: str) -> Any:
        raise RuntimeError("forensics exploded")

    engine = make_engine(
        recorded,
        write_config(tmp_path / "f.toml", receiver, route=ROUTE0),
        ManualClock(),
        attribute=broken_why,
    )
    fail_runs(1, broken=True)
    step(engine)
    (hook,) = receiver.delivered("/claims")
    notes = hook.body["alerts"][0]["annotations"]
    assert "attribution failed: RuntimeError: forensics exploded" in notes["evidence"]
    assert notes["failure"] == "failed at step 3 of 3 (validate_claim)"
    with engine.store.read() as tx:
        assert tx.fetchall("SELECT failure_step, root_cause_step FROM respond_incidents") == [
            ("validate_claim", "validate_claim")
        ]


def test_run_failed_before_any_step(recorded: str, receiver: Receiver, tmp_path: Path) -> None:
    engine = make_engine(
        recorded, write_config(tmp_path / "f.toml", receiver, route=ROUTE0), ManualClock()
    )
    with flightlog.run("claims-triage", steps=3) as run:
        run.fail("input rejected before any step")
    flightlog.flush()
    step(engine)
    with engine.store.read() as tx:
        (row,) = tx.fetchall("SELECT failure_step, root_cause_team FROM respond_incidents")
    assert row[1] == "claims-team"  # no step: the workflow's owner is paged
    (hook,) = receiver.delivered("/claims")
    assert hook.body["alerts"][0]["labels"]["role"] == "root_cause"


def test_retries_back_off_with_jitter_and_give_up_after_a_day(
    recorded: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.script["/claims"] = [503] * 1000
    clock = ManualClock()
    engine = make_engine(recorded, write_config(tmp_path / "f.toml", receiver, route=ROUTE0), clock)
    out = engine.outbox
    delays = [out.backoff_s(n) for n in range(1, 12)]
    assert all(0 <= d <= 2 * 2 ** (n - 1) for n, d in enumerate(delays[:6], 1))  # full jitter
    assert max(delays) <= 300 and out.backoff_s(1, retry_after_s=40) >= 40
    fail_runs(1, broken=True)
    step(engine)
    for _ in range(30):
        clock.advance(3600)
        engine.tick()
    entries = [e for e in list_outbox(engine.store) if e.channel == "claims-hook"]
    entry = entries[-1]  # the first notification (the list is newest first)
    assert entry.status == "failed" and (entry.last_error or "").startswith("gave up after")
    assert 20 <= entry.attempts <= 30  # hourly attempts once the backoff reached its cap
