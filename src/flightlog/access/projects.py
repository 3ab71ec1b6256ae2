"""Projects: every run belongs to one, and a reader sees only its own project's runs.

``ProjectStore(store, project)`` is the read side of a store seen from one project: the
server hands it to the REST API, the web UI and the forensics they call, so every query
they make (listing, lookup by id or prefix, history baselines, steps, lineage, findings)
is scoped by construction rather than by each handler remembering to filter.

A run of another project is indistinguishable from a run that does not exist: the same
404, and its id never makes a prefix ambiguous. Payloads are shared by content hash across
projects; ``payload_visible`` tells whether a hash is referenced by a run of this project
(the REST payload route checks it; ``get_payloads`` is called only with hashes taken from
records already read through this object).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from flightlog.errors import NotFoundError
from flightlog.model import Edge, Finding, Run, RunRecord, Step
from flightlog.store import core
from flightlog.store.base import RunQuery, Tx

if TYPE_CHECKING:
    from flightlog.store.base import Store


class ProjectStore:
    """The read-side ``Store`` methods, restricted to ``project``."""

    def __init__(self, store: Store, project: str) -> None:
        self._store = store
        self.project = project
        self.dialect = store.dialect
        # Caches keyed by store url (detection history) must not mix projects.
        self.url = f"{store.url}#project={project}"
        self.display_url = f"project {project!r}"

    # -- runs ----------------------------------------------------------------------------
    def _scoped(self, query: RunQuery | None) -> RunQuery:
        return dataclasses.replace(query or RunQuery(), project=self.project)

    def list_runs(self, query: RunQuery | None = None) -> list[Run]:
        return list(self._store.list_runs(self._scoped(query)))

    def count_runs(self, query: RunQuery | None = None) -> int:
        return int(self._store.count_runs(self._scoped(query)))

    def get_run(self, run_id: str) -> Run | None:
        run = self._store.get_run(run_id)
        return run if run is not None and run.project == self.project else None

    def resolve_run_id(self, prefix: str, *, project: str | None = None) -> str:
        return str(self._store.resolve_run_id(prefix, project=self.project))

    def visible_runs(self, run_ids: Iterable[str]) -> set[str]:
        """Which of ``run_ids`` belong to this project."""
        with self._store.read() as tx:
            projects = core.run_projects(tx, run_ids)
        return {rid for rid, project in projects.items() if project == self.project}

    def _check(self, run_id: str) -> None:
        if not self.visible_runs([run_id]):
            raise NotFoundError(f"no run with id {run_id!r} in {self.display_url}")

    def get_steps(self, run_id: str) -> list[Step]:
        if not self.visible_runs([run_id]):
            return []
        return list(self._store.get_steps(run_id))

    def get_edges(self, run_id: str) -> list[Edge]:
        if not self.visible_runs([run_id]):
            return []
        return list(self._store.get_edges(run_id))

    def get_findings(self, run_id: str) -> list[Finding]:
        if not self.visible_runs([run_id]):
            return []
        return list(self._store.get_findings(run_id))

    def get_record(self, run_id: str) -> RunRecord:
        self._check(run_id)
        record: RunRecord = self._store.get_record(run_id)
        return record

    def workflows(self, *, project: str | None = None) -> list[str]:
        """Every workflow name seen in this project (``project`` is ignored: always this one)."""
        return list(self._store.workflows(project=self.project))

    # -- payloads ------------------------------------------------------------------------
    def get_payloads(self, hashes: Iterable[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = self._store.get_payloads(hashes)
        return out

    def payload_visible(self, h: str) -> bool:
        """Whether a run of this project, or one of its steps, references payload ``h``."""
        with self._store.read() as tx:
            return core.payload_in_project(tx, h, self.project)

    # -- pass-through of what is not per run ---------------------------------------------
    def schema_version(self, component: str) -> int:
        return int(self._store.schema_version(component))

    def read(self) -> AbstractContextManager[Tx]:
        """A raw read transaction: callers must scope their own SQL (``visible_runs``)."""
        cm: AbstractContextManager[Tx] = self._store.read()
        return cm

    def dropped_records(self) -> int:
        return int(self._store.dropped_records())
