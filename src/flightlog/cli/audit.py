"""``flightlog audit ...``: the tamper-evident audit ledger (see docs/audit.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flightlog.cli._common import (
    db_option,
    echo_json,
    errors_as_messages,
    fmt_time,
    json_option,
    open_store_for_cli,
    parse_since,
)


def _check_out(out: Path | None) -> None:
    """--out must be writable where it is named, before any work (export signs a checkpoint
    first): a missing directory is a one-line error, not a traceback after the work."""
    if out is None:
        return
    from flightlog.errors import InputError

    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"cannot write {out}: directory {parent} does not exist")


def _ledger(db: str, *, readonly: bool = False) -> Any:
    from flightlog.errors import StoreSchemaError
    from flightlog.ledger import attach

    store = open_store_for_cli(db, readonly=readonly)
    try:
        return attach(store)
    except StoreSchemaError as exc:
        store.close()
        if exc.component == "ledger" and exc.have == 0:
            # Not an old store to migrate: the ledger never ran on it.
            raise StoreSchemaError(
                f"{store.display_url} has no audit ledger: its records were written with the "
                "ledger off (FLIGHTLOG_LEDGER=off) or by a Flightlog without one, so there is "
                "nothing to verify or prove; runs recorded with the ledger on (the default) "
                "are logged",
                component=exc.component,
                have=exc.have,
            ) from exc
        raise


@click.group()
def audit() -> None:
    """The audit ledger: every record in a signed, append-only Merkle log (RFC 9162,
    C2SP checkpoints), verifiable offline, with personal data redactable."""


@audit.command()
@db_option
@json_option
def status(db: str, as_json: bool) -> None:
    """Show the log's size, last checkpoint, key and last verification."""
    from flightlog.ledger.status import status as get_status

    with errors_as_messages():
        s = get_status(_ledger(db, readonly=True))
    if as_json:
        echo_json(s)
        return
    last = s["last_checkpoint"]
    ver = s["last_verification"]
    click.echo(f"log          {s['origin']}")
    click.echo(f"entries      {s['size']}  (root {s['root']})")
    if s["sequencing"] == "integrator":  # PostgreSQL: acknowledged entries wait for it
        who = s["integrator"]
        click.echo(
            f"pending      {s['pending_entries']} acknowledged, not provable yet; integrator "
            + (f"pid {who['pid']} on {who['host']}" if who else "none running (no writer is up)")
        )
    click.echo(
        "checkpoint   "
        + (
            f"size {last['size']} at {fmt_time(last['created_ns'])} UTC, {s['unsigned_entries']} "
            "entries since"
            if last
            else "none yet (flightlog audit checkpoint)"
        )
    )
    click.echo(f"key          {s['verifier_key'] or '(not created yet)'}")
    click.echo(f"key file     {s['key_path']}")
    click.echo(f"witness      {s['witness_path'] or 'off'}")
    click.echo(f"retention    {s['retention_days']:g} days")
    click.echo(
        "verified     "
        + (
            f"{fmt_time(ver['at_ns'])} UTC: {ver['summary']}"
            if ver
            else "never (flightlog audit verify)"
        )
    )


@audit.command()
@db_option
def key(db: str) -> None:
    """Print the verifier key (C2SP signed-note format) that auditors use to check
    checkpoints, bundles and proofs. Creates the signing key of a log that has signed
    nothing yet; for a log with checkpoints, a missing key file is an error."""
    with errors_as_messages():
        ledger = _ledger(db)
        with ledger.store.read() as tx:
            fresh = not ledger.checkpoint_notes(tx)
        click.echo(ledger.verifier(create=fresh).encode())


@audit.command()
@db_option
@json_option
@click.option(
    "--git",
    "git_repo",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also commit the checkpoint to this git repository (anchoring).",
)
def checkpoint(db: str, as_json: bool, git_repo: Path | None) -> None:
    """Sign a checkpoint of the log now (C2SP tlog-checkpoint, Ed25519) and append it to
    the witness file; never signs one inconsistent with the previous checkpoint."""
    with errors_as_messages():
        cp = _ledger(db).checkpoint(git_repo=git_repo)
    if as_json:
        echo_json(cp.to_dict())
    else:
        click.echo(cp.note, nl=False)


@audit.command()
@db_option
@json_option
@click.option(
    "--key",
    "key_text",
    help="Verifier key to check signatures with (default: the store's key file).",
)
@click.option(
    "--witness",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Witness file of published checkpoints (default: the configured one).",
)
@click.option(
    "--record",
    is_flag=True,
    help="Also record the result in the store (what `audit status` shows as the last "
    "verification). Without it, verify only reads: an evidence copy stays as it was.",
)
def verify(
    db: str, as_json: bool, key_text: str | None, witness: Path | None, record: bool
) -> None:
    """Recompute the tree from every stored entry, check every checkpoint's signature and
    consistency and every record against its leaf; name the first divergence. Exit 1 if
    anything fails. Reads only, unless --record."""
    from flightlog.ledger.note import Verifier
    from flightlog.ledger.verify import verify as run_verify

    with errors_as_messages():
        ledger = _ledger(db, readonly=not record)
        report = run_verify(
            ledger,
            verifier=Verifier.parse(key_text) if key_text else None,
            witness=witness,
            save_result=record,
        )
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.summary())
        for p in report.problems[1:10]:
            click.echo(f"  also: {p.message}")
        if report.ok or report.unsigned:
            click.echo(f"unsigned tail: {report.tail()}")
    if not report.ok:
        raise SystemExit(1)


@audit.command()
@db_option
@click.argument("record", required=False)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the proof here (default: print it).",
)
@click.option(
    "--consistency",
    "old_size",
    type=int,
    help="Instead: prove that the checkpoint of this size is a prefix of the log now "
    "(JSON: both signed checkpoints and the RFC 9162 consistency proof).",
)
def prove(db: str, record: str | None, out: Path | None, old_size: int | None) -> None:
    """Write a C2SP tlog-proof for RECORD (#N leaf index, run id, step id or finding id):
    its entry, inclusion proof and the signed checkpoint. With --consistency N, a consistency
    proof from the checkpoint of size N to a new checkpoint."""
    from flightlog.ledger.proof import prove as make_proof
    from flightlog.ledger.proof import prove_consistency

    with errors_as_messages():
        _check_out(out)
        if old_size is not None:
            import json

            text = json.dumps(prove_consistency(_ledger(db), old_size).to_dict(), indent=2)
            text += "\n"
        elif record is None:
            from flightlog.errors import InputError

            raise InputError("give a RECORD to prove, or --consistency SIZE")
        else:
            text = make_proof(_ledger(db), record).to_text()
    if out is None:
        click.echo(text, nl=False)
    else:
        try:
            out.write_text(text)
        except OSError as exc:
            click.echo(f"error: cannot write {out}: {exc.strerror or exc}", err=True)
            raise SystemExit(1) from exc
        click.echo(f"wrote {out}")


@audit.command()
@db_option
@json_option
@click.option("--run", "run_id", help="Export the entries of this run.")
@click.option("--since", help="Export entries appended since (30m, 2h, 7d or ISO time).")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bundle file to write.",
)
def export(db: str, as_json: bool, run_id: str | None, since: str | None, out: Path) -> None:
    """Write a self-contained auditor bundle: entries, inclusion proofs, the signed
    checkpoint and the verifier key (verify it with 'flightlog audit verify-bundle')."""
    from flightlog.ledger.bundle import export as do_export

    with errors_as_messages():
        _check_out(out)
        summary = do_export(_ledger(db), out, run_id=run_id, since_ns=parse_since(since))
    if as_json:
        echo_json(summary.to_dict())
    else:
        click.echo(
            f"wrote {summary.path}: {summary.entries} entries of {len(summary.runs)} run(s), "
            f"checkpoint size {summary.checkpoint_size}"
        )


@audit.command("verify-bundle")
@json_option
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--key",
    "key_text",
    help="Pin the verifier key (else the bundle's own key is used, and the output says so).",
)
def verify_bundle(as_json: bool, file: Path, key_text: str | None) -> None:
    """Verify an auditor bundle (or a .tlog-proof) offline, with no store, and print what
    it proves."""
    from flightlog.ledger.bundle import verify_bundle as check

    with errors_as_messages():
        if file.read_bytes()[:22] == b"c2sp.org/tlog-proof@v1":
            from flightlog.errors import InputError
            from flightlog.ledger.note import Verifier
            from flightlog.ledger.proof import verify_tlog_proof

            if not key_text:
                raise InputError("a tlog-proof carries no key: pass --key NAME+ID+KEY")
            p = verify_tlog_proof(file.read_text(), Verifier.parse(key_text))
            result = {
                "ok": True,
                "index": p.index,
                "checkpoint_size": p.checkpoint.size,
                "origin": p.checkpoint.origin,
                "entry": p.entry.decode(),
                "summary": f"verified: entry #{p.index} is included in checkpoint "
                f"{p.checkpoint.origin} size {p.checkpoint.size}",
            }
        else:
            result = check(file, key_text).to_dict()
    if as_json:
        echo_json(result)
    else:
        click.echo(result["summary"])


@audit.command()
@db_option
@json_option
@click.option("--run", "run_id", required=True, help="The run whose personal data to delete.")
@click.option("--reason", help="Why (recorded in the redaction entry).")
def redact(db: str, as_json: bool, run_id: str, reason: str | None) -> None:
    """Delete a run's committed values (payloads, sensitive attributes) and their salts;
    append a redaction entry. Every proof and 'audit verify' still pass."""
    from flightlog.ledger.redact import redact_run

    with errors_as_messages():
        r = redact_run(_ledger(db), run_id, reason=reason)
    if as_json:
        echo_json(r.to_dict())
    else:
        click.echo(
            f"redacted run {r.run_id}: {r.values} values in {r.entries} entries, "
            f"{r.payloads_deleted} payloads deleted ({r.payloads_kept} kept: shared with other "
            f"runs); redaction entry #{r.redaction_index}"
        )


@audit.command()
@db_option
@json_option
@click.option(
    "--before",
    required=True,
    help="Prune runs started before this: a time ago (400d) or an ISO-8601 time.",
)
def prune(db: str, as_json: bool, before: str) -> None:
    """Delete the runs older than a cut-off (their records, committed values and entry
    contents) while keeping every leaf and interior hash, so the log, its checkpoints and
    the proofs of the remaining entries stay valid; append a pruning entry. Refuses any
    cut-off inside the retention window (default 183 days, $FLIGHTLOG_LEDGER_RETENTION_DAYS)."""
    from flightlog.ledger.retention import prune as prune_before

    cutoff = parse_since(before)
    assert cutoff is not None  # --before is required
    with errors_as_messages():
        pruned = prune_before(_ledger(db), cutoff)
    if as_json:
        echo_json(pruned.to_dict())
    else:
        if pruned.prune_index < 0:  # nothing was old enough: no pruning entry appended
            click.echo(f"nothing to prune: no run started before {fmt_time(cutoff)} UTC")
        else:
            click.echo(
                f"pruned {pruned.runs} run(s) started before {fmt_time(cutoff)} UTC: "
                f"{pruned.entries} entries emptied, hashes kept; pruning entry "
                f"#{pruned.prune_index}"
            )
