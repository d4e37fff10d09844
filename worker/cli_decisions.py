"""The commands where a person decides: legal holds and approvals.

    retention-worker holds add | list | release
    retention-worker approvals list
    retention-worker approve ID --by NAME --reason TEXT
    retention-worker reject ID --by NAME --reason TEXT

Every hold placed or released and every decision is written to the ledger in the state
database and to the audit trail (one event each, under an action id of its own). See
docs/approvals.md for the whole procedure with real output.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from worker.app import utc_now
from worker.approvals import Approval, ApprovalError, ApprovalLedger
from worker.audit import AuditTrail
from worker.cli_common import EXIT_CODES_HELP, Ctx, config_option, fail
from worker.configload import Config, load_config
from worker.errors import ExitCode, RetentionError, SettingsError
from worker.events import ApprovalChanged, EventBus, HoldChanged
from worker.gate import reason_digest
from worker.holds import Hold, HoldError, HoldLedger
from worker.keys import record_key_hash
from worker.logging import LogSubscriber
from worker.policy import effective_rules
from worker.report import render_table
from worker.state import StateStore

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@contextmanager
def _state(ctx: Ctx) -> Iterator[tuple[StateStore, EventBus]]:
    """The migrated state database, and a bus that writes the audit trail (required)."""
    store = StateStore(ctx.settings.state_url, retry=ctx.settings.retry_policy())
    try:
        store.check()
        bus = EventBus()
        bus.subscribe(AuditTrail(store, utc_now), required=True)
        bus.subscribe(LogSubscriber())
        yield store, bus
    except (HoldError, ApprovalError) as exc:
        fail(str(exc), ExitCode.BAD_CONFIG)
    except RetentionError as exc:
        fail(str(exc), ExitCode.RUN_FAILED)
    finally:
        store.close()


def _action_id() -> str:
    return uuid.uuid4().hex


# --- holds ---------------------------------------------------------------------------------


@click.group(epilog=EXIT_CODES_HELP)
def holds() -> None:
    """Legal holds: rows that must not be changed while a matter is open.

    A hold covers a customer (every product), a customer × product (--product), a rule of
    it (--rule), or one record (--table and --key: the ledger stores only the keyed hash of
    the key). A hold beats every rule, setting and approval; several holds may cover one
    record, and releasing one keeps its history. Write the matter in --reason, never a
    person's name.
    """


def _check_scope(
    config: Config,
    customer: str,
    product: str | None,
    rule: str | None,
    table: str | None,
    key: tuple[str, ...],
) -> None:
    """Refuse a hold that names what the configuration does not have (a typo holds nothing)."""
    set_aside = {Path(p.file).stem for p in config.problems}
    if customer not in config.customers:
        if customer in set_aside:
            return  # its file is broken; the hold must still be placeable
        known = ", ".join(sorted(config.customers)) or "(none)"
        fail(f"unknown customer {customer!r}; known: {known}")
    chosen = config.customers[customer]
    if product is None:
        return
    if product not in chosen.products or product not in config.products:
        fail(f"{customer} has no product {product!r}; it has {', '.join(sorted(chosen.products))}")
    mapping = config.products[product]
    if rule is not None:
        ids = {r.id for r in mapping.rules}
        ids |= {e.id for e in effective_rules(config.catalogue, chosen, mapping)}
        if rule not in ids:
            fail(f"{product} has no rule {rule!r}; it has {', '.join(sorted(ids))}")
    if table is not None:
        subjects = {s.table: s for s in mapping.subjects.values()}
        if table not in subjects:
            fail(
                f"{table!r} is not a subject table of {product}; hold the subject's record "
                f"(its dependents are kept with it): {', '.join(sorted(subjects))}"
            )
        columns = subjects[table].key
        if len(key) != len(columns):
            fail(
                f"the key of {table} has {len(columns)} part(s) ({', '.join(columns)}); "
                f"give --key once per part, in that order"
            )


@holds.command("add", epilog=EXIT_CODES_HELP)
@config_option
@click.option("--customer", required=True, metavar="C", help="The customer held.")
@click.option("--product", metavar="P", help="Only this product of the customer.")
@click.option("--rule", metavar="R", help="Only this rule (needs --product).")
@click.option("--table", metavar="T", help="A record's subject table (needs --product, --key).")
@click.option(
    "--key",
    "key",
    multiple=True,
    metavar="K",
    help="The record's key; repeat for each part of a composite key, in the mapping's order.",
)
@click.option("--matter", required=True, help="The matter id (a case or ticket number).")
@click.option("--reason", required=True, help="Why; never a person's name.")
@click.option("--by", "by", required=True, metavar="NAME", help="Who places the hold.")
@click.pass_obj
def holds_add(
    ctx: Ctx,
    config_dir: Path | None,
    customer: str,
    product: str | None,
    rule: str | None,
    table: str | None,
    key: tuple[str, ...],
    matter: str,
    reason: str,
    by: str,
) -> None:
    """Place a legal hold. It takes effect at once, also for a run in progress (each batch
    reads the holds again)."""
    if bool(table) != bool(key):
        fail("a hold on a record needs both --table and --key")
    config = load_config(config_dir or ctx.settings.config_dir)
    _check_scope(config, customer, product, rule, table, key)
    key_hash = None
    if table is not None and product is not None:
        try:
            pepper = ctx.settings.require_pepper()
        except SettingsError as exc:
            fail(str(exc))
        key_hash = record_key_hash(pepper, customer, product, table, key)
    with _state(ctx) as (store, bus):
        hold = HoldLedger(store).place(
            customer=customer,
            product=product,
            rule=rule,
            table=table,
            key_hash=key_hash,
            matter=matter,
            reason=reason,
            by=by,
            at=utc_now(),
        )
        _publish_hold(bus, hold, "placed", by, reason)
    click.echo(f"hold {hold.hold_id} placed on {_scope_text(hold)} (matter {hold.matter}).")


@holds.command("list", epilog=EXIT_CODES_HELP)
@click.option("--all", "everything", is_flag=True, help="Also released holds.")
@click.option("--customer", metavar="C", help="Only this customer's holds.")
@FORMAT
@click.pass_obj
def holds_list(ctx: Ctx, everything: bool, customer: str | None, fmt: str) -> None:
    """List the holds in force (with --all, released ones too), oldest first."""
    with _state(ctx) as (store, _bus):
        found = HoldLedger(store).list(include_released=everything, customer=customer)
    if fmt == "json":
        click.echo(json.dumps([_hold_json(h) for h in found], indent=2))
        return
    if not found:
        click.echo("No holds in force." if not everything else "No holds.")
        return
    rows = [
        [
            h.hold_id,
            _scope_text(h),
            h.matter,
            h.placed_by,
            f"{h.placed_at:%Y-%m-%d %H:%M}Z",
            f"released {h.released_at:%Y-%m-%d} by {h.released_by}" if h.released_at else "active",
        ]
        for h in found
    ]
    click.echo(render_table(["hold", "scope", "matter", "by", "placed", "status"], rows))


@holds.command("release", epilog=EXIT_CODES_HELP)
@click.argument("hold_id")
@click.option("--reason", required=True, help="Why the hold ends (the matter is closed).")
@click.option("--by", "by", required=True, metavar="NAME", help="Who releases the hold.")
@click.pass_obj
def holds_release(ctx: Ctx, hold_id: str, reason: str, by: str) -> None:
    """Release a hold; its rows are free again at the next run, unless another hold covers
    them. The ledger keeps the released hold."""
    with _state(ctx) as (store, bus):
        hold = HoldLedger(store).release(hold_id, by=by, reason=reason, at=utc_now())
        _publish_hold(bus, hold, "released", by, reason)
    click.echo(f"hold {hold.hold_id} on {_scope_text(hold)} released.")


def _scope_text(hold: Hold) -> str:
    where = hold.customer
    if hold.product:
        where += f" × {hold.product}"
    if hold.rule:
        where += f", rule {hold.rule}"
    if hold.key_hash:
        where += f", a record of {hold.table} ({hold.key_hash[:12]}…)"
    return where


def _hold_json(hold: Hold) -> dict[str, Any]:
    return {
        "hold_id": hold.hold_id,
        "scope": hold.scope,
        "customer": hold.customer,
        "product": hold.product,
        "rule": hold.rule,
        "table": hold.table,
        "key_hash": hold.key_hash,
        "matter": hold.matter,
        "reason": hold.reason,
        "placed_by": hold.placed_by,
        "placed_at": hold.placed_at.isoformat(),
        "released_at": hold.released_at.isoformat() if hold.released_at else None,
        "released_by": hold.released_by,
        "release_reason": hold.release_reason,
    }


def _publish_hold(bus: EventBus, hold: Hold, change: str, by: str, reason: str) -> None:
    bus.publish(
        HoldChanged(
            run_id=_action_id(),
            customer=hold.customer,
            product=hold.product or "*",
            hold_id=hold.hold_id,
            change=change,
            scope=hold.scope,
            matter=hold.matter,
            by=by.strip(),
            reason_sha256=reason_digest(reason),
            rule=hold.rule,
            table=hold.table,
            key_hash=hold.key_hash,
        )
    )


# --- approvals -----------------------------------------------------------------------------


@click.group(epilog=EXIT_CODES_HELP)
def approvals() -> None:
    """Requests waiting for a person: rules flagged `approval: required`, and rules that
    tripped the blast-radius breaker. Decide with `approve` or `reject`."""


@approvals.command("list", epilog=EXIT_CODES_HELP)
@click.option("--all", "everything", is_flag=True, help="Also decided and used requests.")
@FORMAT
@click.pass_obj
def approvals_list(ctx: Ctx, everything: bool, fmt: str) -> None:
    """Show what waits (customer, product, rule, why, counts, since) and what is approved
    but not yet used."""
    with _state(ctx) as (store, _bus):
        found = ApprovalLedger(store).list(include_closed=everything)
    if fmt == "json":
        click.echo(json.dumps([_approval_json(a) for a in found], indent=2))
        return
    if not found:
        click.echo("Nothing waits for approval.")
        return
    rows = [
        [
            a.approval_id,
            a.customer,
            a.product,
            a.rule,
            a.why,
            a.status,
            a.eligible,
            a.cutoff.isoformat(),
            f"{len(a.approvers)}/{a.approvers_needed}",
            f"{a.requested_at:%Y-%m-%d %H:%M}Z",
        ]
        for a in found
    ]
    headers = ["id", "customer", "product", "rule", "why", "status", "eligible", "cutoff"]
    click.echo(render_table([*headers, "approvers", "since"], rows))
    for a in found:
        reasons = "; ".join(a.figures.get("reasons", []))
        categories = ", ".join(a.figures.get("categories", []))
        click.echo(
            f"  {a.approval_id}: {a.figures.get('action', 'change')} {a.eligible} row(s) of "
            f"{a.figures.get('table', '?')} ({categories or 'no categories'}): {reasons}"
        )


def _approval_json(a: Approval) -> dict[str, Any]:
    return {
        "approval_id": a.approval_id,
        "customer": a.customer,
        "product": a.product,
        "rule": a.rule,
        "why": a.why,
        "status": a.status,
        "requested_at": a.requested_at.isoformat(),
        "cutoff": a.cutoff.isoformat(),
        "eligible": a.eligible,
        "bound": a.bound,
        "approvers_needed": a.approvers_needed,
        "figures": a.figures,
        "decisions": [
            {"decision": d.decision, "by": d.by, "reason": d.reason, "at": d.at.isoformat()}
            for d in a.decisions
        ],
    }


def _decide(ctx: Ctx, approval_id: str, decision: str, by: str, reason: str) -> Approval:
    with _state(ctx) as (store, bus):
        approval = ApprovalLedger(store).decide(
            approval_id, decision, by=by, reason=reason, at=utc_now()
        )
        change = "rejected" if decision == "reject" else "approved"
        bus.publish(
            ApprovalChanged(
                run_id=_action_id(),
                customer=approval.customer,
                product=approval.product,
                rule=approval.rule,
                approval_id=approval.approval_id,
                change=change,
                status=approval.status,
                why=approval.why,
                eligible=approval.eligible,
                cutoff=approval.cutoff,
                bound=approval.bound,
                by=by.strip(),
                reason_sha256=reason_digest(reason),
                approvers=len(approval.approvers),
                approvers_needed=approval.approvers_needed,
            )
        )
    return approval


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("approval_id")
@click.option("--by", "by", required=True, metavar="NAME", help="Who approves.")
@click.option("--reason", required=True, help="Why the change is right.")
@click.pass_obj
def approve(ctx: Ctx, approval_id: str, by: str, reason: str) -> None:
    """Approve a waiting request. It covers the cutoff and rows counted (plus a tenth): the
    next run of the pair does the rule, or asks again if it finds more. With four-eyes a
    second, different approver completes it."""
    a = _decide(ctx, approval_id, "approve", by, reason)
    if a.status == "approved":
        click.echo(
            f"{a.approval_id} approved: the next run of {a.customer} × {a.product} does "
            f"{a.rule} for rows before {a.cutoff.isoformat()}, at most {a.bound} row(s)."
        )
    else:
        click.echo(
            f"{a.approval_id}: {len(a.approvers)} of {a.approvers_needed} approvals "
            f"({', '.join(a.approvers)}); it waits for a second, different approver."
        )


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("approval_id")
@click.option("--by", "by", required=True, metavar="NAME", help="Who rejects.")
@click.option("--reason", required=True, help="Why not (fix the cause: a setting, a mapping).")
@click.pass_obj
def reject(ctx: Ctx, approval_id: str, by: str, reason: str) -> None:
    """Reject a waiting request: nothing is changed. A later run that finds the same rows
    asks again, so fix the cause (a mistyped period, a wrong mapping)."""
    a = _decide(ctx, approval_id, "reject", by, reason)
    click.echo(f"{a.approval_id} rejected: {a.rule} of {a.customer} × {a.product} changes nothing.")


COMMANDS = (holds, approvals, approve, reject)
"""Registered on the main group by worker/cli.py."""
