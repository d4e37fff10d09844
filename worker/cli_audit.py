"""`retention-worker audit`: verify the trail, and make, list and check its signed checkpoints.

    retention-worker audit verify [--checkpoint FILE|SEQ:HASH ...] [--public-key FILE]
    retention-worker audit checkpoint            sign the head now; print it (JSON)
    retention-worker audit checkpoints [--since SEQ]   the stored ones, one JSON line each
    retention-worker audit keygen --out DIR      a new Ed25519 key pair for checkpoints
    retention-worker audit reconcile             settle what a crash left open
    retention-worker audit policy FINGERPRINT    the configuration a run followed

docs/audit.md says what an auditor keeps and how they check it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from worker.app import utc_now
from worker.checkpoints import (
    Checkpoint,
    Checkpointer,
    CheckpointError,
    load_public_key,
    new_key_pair,
    parse,
    signature_ok,
)
from worker.cli_common import EXIT_CODES_HELP, Ctx, config_option, fail
from worker.errors import ExitCode, RetentionError, SettingsError
from worker.state import StateStore


@contextmanager
def _store(ctx: Ctx) -> Iterator[StateStore]:
    store = ctx.settings.state_store()
    try:
        store.check()
        yield store
    except RetentionError as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    finally:
        store.close()


@click.group(epilog=EXIT_CODES_HELP)
def audit() -> None:
    """Read and check the audit trail and its signed checkpoints."""


def _anchors(values: tuple[str, ...], public_key: Path | None) -> dict[int, Checkpoint]:
    """Checkpoints from the command line (files or SEQ:HASH), signatures checked."""
    public = load_public_key(public_key) if public_key is not None else None
    found: dict[int, Checkpoint] = {}
    for value in values:
        path = Path(value)
        if path.is_file():
            text, where = path.read_text(encoding="utf-8"), str(path)
        else:
            text, where = value, f"--checkpoint {value}"
        for checkpoint in parse(text, where):
            if public is not None and checkpoint.signature is None:
                raise CheckpointError(
                    f"checkpoint {checkpoint.short} in {where} carries no signature, so "
                    "--public-key cannot vouch for it: give its JSON line from `retention-worker "
                    "audit checkpoints` (which holds the signature), or leave out --public-key "
                    "to use SEQ:HASH as an anchor you trust yourself"
                )
            if public is not None and not signature_ok(checkpoint, public):
                raise CheckpointError(
                    f"checkpoint {checkpoint.short} in {where} is not signed by that public "
                    "key: it was not made by this worker, or it was changed"
                )
            found[checkpoint.seq] = checkpoint
    return found


@audit.command("verify", epilog=EXIT_CODES_HELP)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    metavar="FILE|SEQ:HASH",
    help="A checkpoint kept outside the state database (a file of `audit checkpoints` lines, "
    "or SEQ:HASH); the trail must reach it with that hash. Repeatable.",
)
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Check each checkpoint's signature with this Ed25519 public key (PEM).",
)
@click.pass_obj
def audit_verify(ctx: Ctx, checkpoints: tuple[str, ...], public_key: Path | None) -> None:
    """Recompute the hash chain; exit 1 naming the first bad event if it was tampered with.

    With --checkpoint, also exit 1 when the trail is shorter than a checkpoint or has another
    hash at its seq (events removed from the end, or rewritten), naming the checkpoint.
    A run.finished of a run with no open run.started before it (a second end, or an end
    without a start) is printed as a note on stderr; it does not change the exit code.
    """
    from worker.verify import verify

    try:
        anchors = _anchors(checkpoints, public_key)
    except CheckpointError as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    with _store(ctx) as store:
        result = verify(store, anchors={s: c.hash for s, c in anchors.items()})
    if result.ok:
        click.echo(
            f"audit trail verified: {result.checked} event(s), chain intact, every batch settled."
        )
        if anchors:
            click.echo(f"  reaches all {len(anchors)} checkpoint(s), up to seq {max(anchors)}")
        for policy, runs in sorted(result.policies.items()):
            click.echo(f"  {runs} run(s) followed policy {policy}")
        _stray_ends(result.stray_ends)
        _second_outcomes(result.second_outcomes)
        return
    _stray_ends(result.stray_ends)
    _second_outcomes(result.second_outcomes)
    click.echo(f"audit trail BROKEN: {result.reason}", err=True)
    sys.exit(ExitCode.RUN_FAILED)


def _stray_ends(stray: tuple[tuple[int, str], ...]) -> None:
    """Say which run.finished records follow no open run.started (a note: the chain holds)."""
    if stray:
        seq, run_id = stray[0]
        click.echo(
            f"note: {len(stray)} run.finished record(s) of a run with no open run.started before "
            f"them (the first: event {seq}, run {run_id}): a second end of a run, or an end "
            "without a start; the runs table keeps each run's first end. Versions before the "
            "runs table refused a second end wrote them for a run whose lease was lost.",
            err=True,
        )


def _second_outcomes(doubled: tuple[tuple[int, str, str, int], ...]) -> None:
    """Say which batch outcomes follow another outcome of the same batch (a note: the chain
    holds, but an exactly-once count of the keys would count that batch twice)."""
    if doubled:
        seq, run_id, rule, batch = doubled[0]
        click.echo(
            f"note: {len(doubled)} batch outcome record(s) of a batch another outcome closed "
            f"already (the first: event {seq}, run {run_id}, rule {rule}, batch {batch}): count "
            "that batch's rows once, by its first outcome. Earlier versions could write them "
            "when a run's lease was taken over; this version refuses them.",
            err=True,
        )


@audit.command("checkpoint", epilog=EXIT_CODES_HELP)
@click.pass_obj
def audit_checkpoint(ctx: Ctx) -> None:
    """Sign the chain's head now, store it, and print it as one JSON line."""
    try:
        signer = ctx.settings.checkpoint_signer()
    except SettingsError as exc:
        fail(str(exc))
    with _store(ctx) as store:
        made = Checkpointer(store, signer).make(utc_now())
    click.echo(made.to_json())
    if signer is None:
        click.echo("warning: RETENTION_CHECKPOINT_KEY is not set: unsigned checkpoint", err=True)


@audit.command("checkpoints", epilog=EXIT_CODES_HELP)
@click.option("--since", type=int, default=0, show_default=True, help="Only after this seq.")
@click.pass_obj
def audit_checkpoints(ctx: Ctx, since: int) -> None:
    """Print the stored checkpoints, one JSON line each: keep them outside the state
    database (`audit checkpoints >> checkpoints.jsonl`) and verify with --checkpoint."""
    with _store(ctx) as store:
        for checkpoint in Checkpointer(store, None).list(since):
            click.echo(checkpoint.to_json())


@audit.command("keygen", epilog=EXIT_CODES_HELP)
@click.option(
    "--out",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for checkpoint-key.pem (secret) and checkpoint-key.pub.pem (for auditors).",
)
def audit_keygen(folder: Path) -> None:
    """Make an Ed25519 key pair for signing checkpoints. Mount the private key as
    RETENTION_CHECKPOINT_KEY_FILE; give the public key to auditors."""
    private_pem, public_pem = new_key_pair()
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / "checkpoint-key.pem", folder / "checkpoint-key.pub.pem"
    if private.exists():
        fail(f"{private} exists; remove it first or choose another --out")
    private.touch(mode=0o600)
    private.write_text(private_pem, encoding="ascii")
    public.write_text(public_pem, encoding="ascii")
    click.echo(f"wrote {private} (secret: set RETENTION_CHECKPOINT_KEY_FILE to it)")
    click.echo(f"wrote {public} (give it to auditors: audit verify --public-key)")


@audit.command("policy", epilog=EXIT_CODES_HELP)
@click.argument("fingerprint")
@click.pass_obj
def audit_policy(ctx: Ctx, fingerprint: str) -> None:
    """Print the effective configuration a policy fingerprint names (as `audit verify` and
    each run.started record show it), as JSON."""
    import json

    import sqlalchemy as sa

    from worker.fingerprint import fingerprint as policy_fingerprint_of
    from worker.state.models import policies

    query = sa.select(policies.c.document).where(policies.c.fingerprint == fingerprint)
    with _store(ctx) as store:
        found = store.read("reading a policy", lambda conn: conn.execute(query).scalar())
    if found is None:
        fail(f"no policy {fingerprint!r} in the state database (runs record it from this version)")
    document = json.loads(found)
    if policy_fingerprint_of(document) != fingerprint:
        fail(f"the stored document of {fingerprint} no longer matches it: it was altered")
    click.echo(json.dumps(document, indent=2, sort_keys=True))


@audit.command("reconcile", epilog=EXIT_CODES_HELP)
@config_option
@click.pass_obj
def audit_reconcile(ctx: Ctx, config_dir: Path | None) -> None:
    """Settle batches and runs a crash left open, against the product databases (every
    start of the worker does this too). Each settlement is a `batch.settled` audit event;
    each open run is closed as `crashed`. Then `audit verify` passes again."""
    from worker.app import reconcile_all, subscribe_state
    from worker.configload import load_config
    from worker.events import EventBus
    from worker.logging import LogSubscriber

    try:
        pepper = ctx.settings.require_pepper()
    except SettingsError as exc:
        fail(str(exc))
    config = load_config(config_dir or ctx.settings.config_dir)
    with _store(ctx) as store:
        bus = EventBus()
        subscribe_state(bus, store)
        bus.subscribe(LogSubscriber())
        settled = reconcile_all(config, ctx.env, bus, store, pepper=pepper)
    click.echo(f"{settled} customer × product pair(s) had open work; settled.")
