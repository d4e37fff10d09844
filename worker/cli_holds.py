"""`retention-worker holds add | list | release`: the legal-hold ledger (worker/holds.py).

Every hold placed or released is written to the ledger in the state database and to the audit
trail (one event each). See docs/approvals.md for the procedure with real output.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from connectors.base import ConnectorError, SchemaError, Target
from worker.app import ConnectorFactory, utc_now
from worker.cli_common import EXIT_CODES_HELP, Ctx, config_option, fail
from worker.cli_people import FORMAT, action_id, state_and_bus
from worker.configload import Config, load_config
from worker.errors import ExitCode, SettingsError
from worker.events import EventBus, HoldChanged
from worker.gate import reason_digest
from worker.holds import Hold, HoldLedger
from worker.keys import record_key_hash
from worker.policy import effective_rules
from worker.report import render_table
from worker.targets import table_for

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
        stored = _stored_key(ctx, config, customer, product, table, key, pepper)
        key_hash = record_key_hash(pepper, customer, product, table, stored)
    with state_and_bus(ctx) as (store, bus):
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
    with state_and_bus(ctx) as (store, _bus):
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
    with state_and_bus(ctx) as (store, bus):
        hold = HoldLedger(store).release(hold_id, by=by, reason=reason, at=utc_now())
        _publish_hold(bus, hold, "released", by, reason)
    click.echo(f"hold {hold.hold_id} on {_scope_text(hold)} released.")


def _stored_key(
    ctx: Ctx,
    config: Config,
    customer: str,
    product: str,
    table: str,
    key: tuple[str, ...],
    pepper: bytes,
) -> tuple[Any, ...]:
    """The record's key as its database stores it: each part read as its column's type, and
    the row looked up, so the hold names exactly the row a run would (`07` is 7; a UUID in any
    case). Exit 2 when no row of the customer has that key, 1 when the database is down."""
    if customer not in config.customers:
        fail(
            f"the file of customer {customer!r} has problems (see `validate`); fix it first to "
            "hold a single record, or hold the whole customer or product now"
        )
    chosen = config.customers[customer]
    mapping = config.products[product]
    subject = next(s for s in mapping.subjects.values() if s.table == table)
    spec = table_for(subject, mapping)
    target = Target(
        spec,
        chosen.products[product].tenant if mapping.tenancy.column else None,
        None,
        dt.date.min,
        dt.datetime.min.replace(tzinfo=dt.UTC),
    )
    try:
        connector = ConnectorFactory(ctx.env, pepper)(chosen, mapping)
        connector.open()
    except ConnectorError as exc:
        fail(f"cannot look the record up: {exc}", ExitCode.RUN_FAILED)
    try:
        found = connector.find_key(target, key)
    except SchemaError as exc:
        fail(str(exc))
    except ConnectorError as exc:
        fail(f"cannot look the record up: {exc}", ExitCode.RUN_FAILED)
    finally:
        connector.close()
    if found is None:
        fail(
            f"no row of {table} of {customer} × {product} has the key "
            f"{', '.join(key)}; check the key (a hold names a record that exists)"
        )
    return found


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
            run_id=action_id(),
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
