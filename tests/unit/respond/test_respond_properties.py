"""Invariants, checked with hypothesis."""

from __future__ import annotations

import fnmatch

from hypothesis import given, settings
from hypothesis import strategies as st

from flightlog.config import parse_config
from flightlog.respond.config import Pattern, respond_config
from flightlog.respond.routing import GroupState, content_hash, flush_due, match_routes

names = st.text(alphabet="abcxyz_-.", min_size=1, max_size=8)
globs = st.text(alphabet="abcxyz_-*?", min_size=1, max_size=6)


@given(globs, names)
def test_globs_match_like_fnmatchcase(pattern: str, name: str) -> None:
    assert Pattern.parse(pattern, "x").matches(name) == fnmatch.fnmatchcase(name, pattern)


TREE = respond_config(
    parse_config("""
[teams.t]
channels = ["h"]
[[owners]]
team = "t"
[channels.h]
type = "webhook"
url = "http://127.0.0.1:9/"
[[route.routes]]
matchers = ['workflow=~"a.*"']
continue = true
[[route.routes]]
matchers = ['team="x"']
[[route.routes.routes]]
matchers = ['step!="b"']
[[route.routes]]
matchers = ['severity="critical"']
"""),
    environ={},
)


@given(
    st.fixed_dictionaries(
        {
            "workflow": names,
            "team": st.sampled_from(["x", "y"]),
            "step": names,
            "severity": st.sampled_from(["error", "critical"]),
        }
    )
)
def test_every_alert_is_routed_somewhere_and_no_route_twice(labels: dict[str, str]) -> None:
    assert TREE.route is not None
    routes = match_routes(TREE.route, labels)
    assert routes
    assert len({r.id for r in routes}) == len(routes)


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(1, 600), st.booleans()), min_size=1, max_size=60))
def test_group_notifications_respect_group_interval(events: list[tuple[int, bool]]) -> None:
    """However the group changes, two notifications are never closer than group_interval,
    and an unchanged firing group is repeated no more often than repeat_interval."""
    assert TREE.route is not None
    route = TREE.route
    second = 1_000_000_000
    now, version = 0, 0
    state = GroupState(first_ns=0, last_sent_ns=None, last_hash=None)
    sent: list[tuple[int, bool]] = []
    for gap, changed in events:
        now += gap * second
        version += changed
        digest = content_hash([(1, "root_cause", "triggered", version)])
        if flush_due(route, state, digest, True, now):
            sent.append((now, digest != state.last_hash))
            state = GroupState(0, now, digest)
    for (t1, _), (t2, was_change) in zip(sent, sent[1:], strict=False):
        assert t2 - t1 >= route.group_interval_ns
        if not was_change:
            assert t2 - t1 >= route.repeat_interval_ns
