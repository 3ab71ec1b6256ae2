"""The core schema: runs, steps, edges, payloads, findings (portable SQL).

Capabilities add their own tables through ``Store.migrate(component, migrations)``; the
``schema_migrations`` table records, per component, which versions are applied.
"""

from __future__ import annotations

from flightlog.store.base import Migration

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component TEXT NOT NULL,
    version INTEGER NOT NULL,
    description TEXT,
    applied_ns BIGINT NOT NULL,
    PRIMARY KEY (component, version)
)
"""

CORE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                workflow TEXT NOT NULL,
                version TEXT,
                owner TEXT,
                service TEXT,
                status TEXT NOT NULL,
                started_ns BIGINT NOT NULL,
                ended_ns BIGINT,
                input_hash TEXT,
                output_hash TEXT,
                reason TEXT,
                failed_step_id TEXT,
                error TEXT,
                declared_steps INTEGER,
                source TEXT NOT NULL,
                attributes TEXT NOT NULL
            )""",
            "CREATE INDEX runs_started ON runs (started_ns)",
            "CREATE INDEX runs_workflow ON runs (workflow, started_ns)",
            "CREATE INDEX runs_status ON runs (status, started_ns)",
            """CREATE TABLE steps (
                run_id TEXT NOT NULL,
                id TEXT NOT NULL,
                parent_id TEXT,
                idx INTEGER NOT NULL,
                name TEXT NOT NULL,
                kind TEXT NOT NULL,
                agent TEXT,
                owner TEXT,
                status TEXT NOT NULL,
                started_ns BIGINT NOT NULL,
                ended_ns BIGINT,
                input_hash TEXT,
                output_hash TEXT,
                error TEXT,
                model TEXT,
                provider TEXT,
                input_tokens BIGINT,
                output_tokens BIGINT,
                cost DOUBLE PRECISION,
                attributes TEXT NOT NULL,
                PRIMARY KEY (run_id, id)
            )""",
            "CREATE INDEX steps_name ON steps (name)",
            """CREATE TABLE edges (
                run_id TEXT NOT NULL,
                source TEXT NOT NULL,
                target TEXT NOT NULL,
                kind TEXT NOT NULL,
                evidence TEXT NOT NULL,
                detail TEXT,
                PRIMARY KEY (run_id, source, target, kind)
            )""",
            """CREATE TABLE payloads (
                hash TEXT PRIMARY KEY,
                data BLOB NOT NULL,
                size BIGINT NOT NULL,
                truncated INTEGER NOT NULL
            )""",
            """CREATE TABLE findings (
                id TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                step_id TEXT,
                detector TEXT NOT NULL,
                severity TEXT NOT NULL,
                message TEXT NOT NULL,
                evidence TEXT NOT NULL,
                created_ns BIGINT NOT NULL
            )""",
            "CREATE INDEX findings_run ON findings (run_id, created_ns)",
        ),
        "runs, steps, edges, payloads, findings",
    ),
    Migration(
        2,
        (
            """CREATE TABLE recorder_drops (
                recorder TEXT PRIMARY KEY,
                service TEXT,
                dropped BIGINT NOT NULL,
                first_ns BIGINT NOT NULL,
                last_ns BIGINT NOT NULL
            )""",
        ),
        "records dropped by recorders under overload, per recorder process",
    ),
    Migration(
        3,
        ("ALTER TABLE findings ADD COLUMN kind TEXT",),
        "a finding's kind is a column (earlier rows: NULL, read from evidence)",
    ),
    Migration(
        4,
        (
            "ALTER TABLE runs ADD COLUMN project TEXT NOT NULL DEFAULT 'default'",
            "CREATE INDEX runs_project ON runs (project, started_ns)",
        ),
        "every run belongs to a project (default 'default'); reads are scoped to it",
    ),
)
