"""``flightlog keys``: API keys of a store (``create``, ``list``, ``revoke``)."""

from __future__ import annotations

import click

from flightlog.cli._common import (
    db_option,
    echo_json,
    errors_as_messages,
    fmt_time,
    json_option,
    open_store_for_cli,
)


@click.group("keys")
def keys() -> None:
    """API keys for flightlog serve: scopes ingest, read, admin; each bound to a project.

    Once any key exists, every endpoint of the server but /healthz and /readyz needs
    Authorization: Bearer <key> (a browser signs in at /signin with a read key instead).
    Exporters and the remote SDK send an ingest key ($FLIGHTLOG_API_KEY for the SDK). Only
    a hash of each key is stored; the key itself is printed once, by create.
    """


@keys.command("create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["ingest", "read", "admin"]),
    required=True,
    help="ingest: POST /v1/traces; read: REST API and web UI; admin: both, and server-wide pages.",
)
@click.option(
    "--project",
    default="default",
    show_default=True,
    help="The project the key ingests into (stamps its runs) or reads from.",
)
@db_option
@json_option
def create(name: str, scope: str, project: str, db: str, as_json: bool) -> None:
    """Create a key and print it (once: only its SHA-256 is stored)."""
    from flightlog.access.keys import create_key

    with errors_as_messages():
        # Keys usually come before the first span: creating them may create the store.
        store = open_store_for_cli(db, create=True)
        try:
            key, secret = create_key(store, name, scope, project)
        finally:
            store.close()
    if as_json:
        echo_json(key.to_dict() | {"key": secret})
        return
    click.echo(secret)
    click.echo(
        f"flightlog: created {scope} key {name!r} (id {key.id}) for project {project!r}; "
        "this is the only time the key is shown",
        err=True,
    )


@keys.command("list")
@db_option
@json_option
def list_(db: str, as_json: bool) -> None:
    """List keys (never their secrets), oldest first."""
    from flightlog.access.keys import list_keys
    from flightlog.cli._safe import clean

    with errors_as_messages():
        store = open_store_for_cli(db, readonly=True)
        try:
            found = list_keys(store)
        finally:
            store.close()
    if as_json:
        echo_json([k.to_dict() for k in found])
        return
    if not found:
        click.echo("no keys: flightlog serve accepts requests without authentication")
        return
    click.echo(
        f"{'id':<12}  {'name':<20} {'scope':<6}  {'project':<16} {'created (UTC)':<19}  state"
    )
    for k in found:
        state = "active" if k.active else f"revoked {fmt_time(k.revoked_ns)}"
        click.echo(
            clean(
                f"{k.id:<12}  {k.name:<20} {k.scope:<6}  {k.project:<16} "
                f"{fmt_time(k.created_ns):<19}  {state}"
            )
        )


@keys.command("revoke")
@click.argument("name_or_id")
@db_option
def revoke(name_or_id: str, db: str) -> None:
    """Revoke a key by name or id: the server refuses it from the next request on."""
    from flightlog.access.keys import revoke_key

    with errors_as_messages():
        store = open_store_for_cli(db)
        try:
            key = revoke_key(store, name_or_id)
        finally:
            store.close()
    click.echo(f"revoked key {key.name!r} (id {key.id}, {key.scope}, project {key.project!r})")
