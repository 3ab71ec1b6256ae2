"""The security suite: attacks against a real ``flightlog serve`` on loopback and real stores.

Fixtures: ``server_factory``/``server`` (a server process, from the server tests), and
``keyed`` (a server whose store has keys for two projects, alpha and beta).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from flightlog.access.keys import create_key
from flightlog.app import open_store
from tests.integration.server.conftest import ServerProcess, free_port, server, server_factory

__all__ = ["Keyed", "ServerProcess", "free_port", "keyed", "server", "server_factory"]


@dataclass
class Keyed:
    srv: ServerProcess
    keys: dict[str, str]  # "alpha-ingest" -> secret, ...

    @property
    def url(self) -> str:
        return self.srv.url

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}


@pytest.fixture
def keyed(server_factory: ServerProcess) -> Keyed:
    store = open_store(server_factory.store_url)
    keys = {}
    try:
        for project in ("alpha", "beta"):
            for scope in ("ingest", "read", "admin"):
                _, secret = create_key(store, f"{project}-{scope}", scope, project)
                keys[f"{project}-{scope}"] = secret
    finally:
        store.close()
    return Keyed(server_factory.start(), keys)
