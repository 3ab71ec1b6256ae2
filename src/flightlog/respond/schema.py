"""The response layer's tables (component ``respond``), in portable SQL."""

from __future__ import annotations

from flightlog.store.base import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            """CREATE TABLE respond_incidents (
                id BIGINT PRIMARY KEY,
                fingerprint TEXT NOT NULL,
                workflow TEXT NOT NULL,
                failure_step TEXT NOT NULL,
                root_cause_step TEXT NOT NULL,
                root_cause_agent TEXT,
                error_class TEXT NOT NULL,
                severity TEXT NOT NULL,
                status TEXT NOT NULL,
                root_cause_team TEXT NOT NULL,
                workflow_team TEXT NOT NULL,
                opened_ns BIGINT NOT NULL,
                acknowledged_ns BIGINT,
                acknowledged_by TEXT,
                resolved_ns BIGINT,
                resolved_by TEXT,
                updated_ns BIGINT NOT NULL,
                last_failure_ns BIGINT NOT NULL,
                run_count BIGINT NOT NULL,
                first_run_id TEXT NOT NULL,
                last_run_id TEXT NOT NULL,
                success_streak INTEGER NOT NULL,
                previous_id BIGINT,
                next_id BIGINT,
                chain TEXT NOT NULL,
                attribution TEXT NOT NULL
            )""",
            "CREATE INDEX respond_incidents_fp ON respond_incidents (fingerprint, opened_ns)",
            "CREATE INDEX respond_incidents_wf ON respond_incidents (workflow, status)",
            """CREATE TABLE respond_processed (
                run_id TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                incident_id BIGINT,
                processed_ns BIGINT NOT NULL
            )""",
            """CREATE TABLE respond_timeline (
                incident_id BIGINT NOT NULL,
                seq BIGINT NOT NULL,
                at_ns BIGINT NOT NULL,
                kind TEXT NOT NULL,
                actor TEXT NOT NULL,
                detail TEXT NOT NULL,
                PRIMARY KEY (incident_id, seq)
            )""",
            """CREATE TABLE respond_alerts (
                incident_id BIGINT NOT NULL,
                role TEXT NOT NULL,
                team TEXT NOT NULL,
                labels TEXT NOT NULL,
                first_notified_ns BIGINT,
                escalation_level INTEGER NOT NULL,
                PRIMARY KEY (incident_id, role)
            )""",
            """CREATE TABLE respond_groups (
                group_key TEXT PRIMARY KEY,
                route_id TEXT NOT NULL,
                channels TEXT NOT NULL,
                group_labels TEXT NOT NULL,
                first_ns BIGINT NOT NULL,
                last_sent_ns BIGINT,
                last_hash TEXT,
                sent_count BIGINT NOT NULL
            )""",
            """CREATE TABLE respond_group_alerts (
                group_key TEXT NOT NULL,
                incident_id BIGINT NOT NULL,
                role TEXT NOT NULL,
                notified_status TEXT NOT NULL,
                PRIMARY KEY (group_key, incident_id, role)
            )""",
            """CREATE TABLE respond_outbox (
                id TEXT PRIMARY KEY,
                seq BIGINT NOT NULL,
                created_ns BIGINT NOT NULL,
                channel TEXT NOT NULL,
                channel_type TEXT NOT NULL,
                kind TEXT NOT NULL,
                action TEXT,
                incident_id BIGINT,
                incident_ids TEXT NOT NULL,
                group_key TEXT,
                summary TEXT NOT NULL,
                body TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                next_attempt_ns BIGINT NOT NULL,
                last_attempt_ns BIGINT,
                delivered_ns BIGINT,
                last_error TEXT,
                response_code INTEGER
            )""",
            "CREATE INDEX respond_outbox_due ON respond_outbox (status, next_attempt_ns)",
            "CREATE INDEX respond_outbox_incident ON respond_outbox (incident_id)",
            """CREATE TABLE respond_state (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
        ),
        "incidents, timeline, alerts, groups, outbox",
    ),
    Migration(
        2,
        ("ALTER TABLE respond_alerts ADD COLUMN muted TEXT",),
        "why an alert is muted (silence or inhibition), for the timeline",
    ),
)


def ensure_schema(store: object) -> None:
    """Apply the response layer's migrations (idempotent, cheap once applied)."""
    store.migrate("respond", MIGRATIONS)  # type: ignore[attr-defined]
