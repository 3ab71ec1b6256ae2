"""``ProjectStore`` and API keys on both dialects (real SQLite file, real PostgreSQL): a run of
another project does not exist, not even as an ambiguous prefix; its project never changes."""

from __future__ import annotations

import pytest

from flightlog.access.keys import KeyRing, create_key, list_keys, revoke_key
from flightlog.access.projects import ProjectStore
from flightlog.app import open_store
from flightlog.errors import InputError, NotFoundError
from flightlog.model import Batch, Payload, Run, Step
from flightlog.store import RunQuery

A = "abc0" + "1" * 28
B = "abc0" + "2" * 28  # shares a 4-digit prefix with A
HASH = "f" * 64


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'p.db'}"
    return str(request.getfixturevalue("pg_url"))


def _seed(url: str) -> None:
    store = open_store(url)
    try:
        store.write(
            Batch(
                runs=[
                    Run(id=A, workflow="wf", started_ns=1, project="alpha", input_hash=HASH),
                    Run(id=B, workflow="wf-beta", started_ns=2, project="beta"),
                ],
                steps=[Step(run_id=A, id="1" * 16, name="s", kind="tool", index=1, started_ns=1)],
                payloads=[Payload(hash=HASH, data=b'"alpha secret"', size=14)],
            )
        )
        # a re-sent start record from another project does not move the run
        store.write(Batch(runs=[Run(id=A, workflow="wf", started_ns=1, project="beta")]))
    finally:
        store.close()


def test_project_scoping_on_both_dialects(url: str) -> None:
    _seed(url)
    store = open_store(url)
    try:
        alpha, beta = ProjectStore(store, "alpha"), ProjectStore(store, "beta")
        assert store.get_run(A).project == "alpha"  # type: ignore[union-attr]
        assert alpha.resolve_run_id("abc0") == A  # B is not a candidate: not ambiguous
        assert beta.resolve_run_id("abc0") == B
        with pytest.raises(NotFoundError) as err:
            beta.resolve_run_id(A)
        assert "alpha" not in str(err.value)
        with pytest.raises(NotFoundError):
            beta.get_record(A)
        assert beta.get_run(A) is None and beta.get_steps(A) == []
        assert [r.id for r in alpha.list_runs()] == [A] and alpha.count_runs() == 1
        assert alpha.count_runs(RunQuery(workflow="wf-beta")) == 0
        assert alpha.workflows() == ["wf"] and beta.workflows() == ["wf-beta"]
        assert alpha.payload_visible(HASH) and not beta.payload_visible(HASH)
        assert beta.visible_runs([A, B]) == {B}
        with pytest.raises(NotFoundError, match="ambiguous"):
            store.resolve_run_id("abc0")  # unscoped, both match
    finally:
        store.close()


def test_keys_on_both_dialects(url: str) -> None:
    store = open_store(url)
    try:
        ring = KeyRing(store)
        assert not ring.enabled()
        key, secret = create_key(store, "ci", "ingest", "alpha")
        assert ring.enabled()
        assert ring.check(secret) == key
        assert ring.check(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
        assert ring.check("Bearer " + secret) is None
        with pytest.raises(InputError, match="exists already"):
            create_key(store, "ci", "read")
        with pytest.raises(InputError, match="scope"):
            create_key(store, "x", "root")
        with pytest.raises(InputError, match="project"):
            create_key(store, "y", "read", "../etc")
        revoke_key(store, key.id)
        assert ring.check(secret) is None and ring.enabled()  # revoking all keeps it locked
        assert [k.revoked_ns is not None for k in list_keys(store)] == [True]
    finally:
        store.close()
