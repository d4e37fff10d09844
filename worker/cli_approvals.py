"""`retention-worker approvals list`, `approve ID`, `reject ID`: what waits for a person
(worker/approvals.py). Every decision is written to the ledger and to the audit trail.
See docs/approvals.md for the procedure with real output.
"""

from __future__ import annotations

import json
from typing import Any

import click

from worker.app import utc_now
from worker.approvals import Approval, ApprovalLedger
from worker.cli_common import EXIT_CODES_HELP, Ctx
from worker.cli_people import FORMAT, action_id, state_and_bus
from worker.events import ApprovalChanged
from worker.gate import reason_digest
from worker.report import render_table

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
    with state_and_bus(ctx) as (store, _bus):
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
    with state_and_bus(ctx) as (store, bus):
        approval = ApprovalLedger(store).decide(
            approval_id, decision, by=by, reason=reason, at=utc_now()
        )
        change = "rejected" if decision == "reject" else "approved"
        bus.publish(
            ApprovalChanged(
                run_id=action_id(),
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
