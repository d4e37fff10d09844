"""What `plan` and `run --once` print: per pair, what was eligible, what changed, what failed.

Every summary is honest about each customer × product: a failed pair or a dry run is never
summed up as "nothing was past its retention period", a count that was not taken is printed
as "not counted" (JSON null), never as 0, and pairs set aside by configuration problems are
listed with the problems. A pair's eligible rows are counted only when the pair succeeded:
a pair that failed or was interrupted may have stopped before some of its rules were counted,
so its own figure is "not counted" (the rules it did count are still listed, each with its
own figure). `plan --format json` prints the document of worker/plandoc.py.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from worker.events import Outcome
from worker.plandoc import SetAside, counted_total, eligible_rows, plan_document, would_rows
from worker.runreport import RulePlan, RunReport


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows under headers in aligned columns (numbers right-aligned), for people."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _is_number(text: str) -> bool:
    return text.replace(".", "", 1).isdigit()


NOT_COUNTED = "not counted"


def _eligible_text(report: RunReport) -> str:
    eligible = eligible_rows(report)
    if eligible is not None:
        return f"{eligible} row(s) eligible"
    if not report.rules:
        return f"eligible rows {NOT_COUNTED}"
    partial = sum(plan.eligible for plan in report.rules)
    return (
        f"eligible rows {NOT_COUNTED} (it stopped after counting {len(report.rules)} "
        f"rule(s): {partial} row(s) there)"
    )


def _pair_line(report: RunReport) -> str:
    """One line per pair: outcome, eligible rows (or "not counted"), rows changed (or would
    change), rows held, rules waiting for approval, error; or why another process ran it
    (worker/leases.py)."""
    if report.skipped is not None:
        skipped = report.skipped
        tick = skipped.tick.strftime("%Y-%m-%d %H:%M:%SZ")
        what = "done" if skipped.why == "done" else "being run"
        return (
            f"  {report.customer} × {report.product}: skipped; {what} by {skipped.holder} "
            f"in the tick of {tick}"
        )
    outcome = str(report.outcome).upper() if report.outcome is not Outcome.SUCCEEDED else "ok"
    figures = _eligible_text(report)
    if not report.dry_run:
        figures += f", {report.changed} row(s) changed"
    elif report.outcome is Outcome.SUCCEEDED:
        figures += f", {would_rows(report)} row(s) would change"
    if report.held:
        figures += f", {report.held} held"
    if report.blocked:
        figures += f", {report.blocked} blocked"
    if report.would_block:
        figures += f", at least {report.would_block} would be blocked"
    if report.awaiting:
        verb = "would wait" if report.dry_run else "wait"
        figures += f", {len(report.awaiting)} rule(s) {verb} for approval"
    note = f": {report.error}" if report.error else ""
    lines = [f"  {report.customer} × {report.product}: {outcome}; {figures}{note}"]
    for plan in report.rules:
        if plan.blocked:
            lines.append(f"    {plan.rule}: {plan.blocked} row(s) blocked (batch.blocked)")
        lines += _would_block_lines(plan)
        if plan.gate in ("held", "awaiting_approval"):
            ident = f" ({plan.approval_id})" if plan.approval_id else ""
            lines.append(
                f"    {plan.rule}: {_gate_text(plan.gate)}{ident}: {'; '.join(plan.reasons)}"
            )
    return "\n".join(lines)


def _would_block_lines(plan: RulePlan) -> list[str]:
    """A dry run's rows of `plan` a run would block, with each reason (none: no line)."""
    if not plan.would_block:
        return []
    lines = [
        f"    {plan.rule}: at least {plan.would_block} eligible row(s) would be blocked and "
        "stay (batch.blocked), as their ON DELETE / ON UPDATE keys reach:"
    ]
    lines += [f"      {n}: {why}" for why, n in sorted(plan.block_reasons.items())]
    return lines


def _gate_text(gate: str) -> str:
    return {"held": "held", "awaiting_approval": "awaits approval", "approved": "approved"}.get(
        gate, gate
    )


def _set_aside_lines(entries: Sequence[SetAside]) -> list[str]:
    lines: list[str] = []
    for entry in entries:
        who = (
            f"customer {entry.customer}"
            if entry.customer
            else f"product {entry.product} (every customer)"
            if entry.product
            else "everything"
        )
        lines.append(
            f"  SET ASIDE {who}: {len(entry.problems)} problem(s) in {entry.file}; "
            f"eligible rows {NOT_COUNTED}"
        )
    return lines


def format_plan(
    reports: Sequence[RunReport],
    fmt: str,
    at: dt.datetime,
    entries: Sequence[SetAside] = (),
) -> str:
    """The plan as a table per rule, then one line per pair (or one JSON document)."""
    if fmt == "json":
        return json.dumps(plan_document(reports, at, entries), indent=2)
    rows = [
        [
            r.customer,
            r.product,
            p.rule,
            p.action,
            p.period,
            p.cutoff.isoformat(),
            p.eligible,
            _gate_text(p.gate) if p.gate else "",
        ]
        for r in reports
        for p in r.rules
    ]
    lines = []
    if rows:
        headers = ["customer", "product", "rule", "action", "period", "cutoff", "eligible"]
        lines.append(render_table([*headers, "gate"], rows))
    changes = _per_table(reports)
    if changes:
        lines.append("A run would change:")
        lines.append(render_table(["product", "table", "action", "rows"], changes))
    lines.append(f"Plan as of {at.astimezone(dt.UTC).isoformat()} (nothing is changed):")
    lines += [_pair_line(r) for r in reports]
    lines += _set_aside_lines(entries)
    lines.append(_eligible_summary(reports, entries, "now") + "; nothing was changed.")
    return "\n".join(lines)


def _eligible_summary(reports: Sequence[RunReport], entries: Sequence[SetAside], when: str) -> str:
    """ "N row(s) eligible <when> in K pair(s)", then what could not be counted; never a 0
    for pairs that were not counted."""
    total = counted_total(reports)
    counted = sum(eligible_rows(r) is not None for r in reports)
    failed = len(reports) - counted
    if total is None:
        summary = f"eligible rows {NOT_COUNTED}: no pair could be counted"
    else:
        summary = f"{total} row(s) eligible{f' {when}' if when else ''} in {counted} pair(s)"
        rows = sum(would_rows(r) for r in reports if eligible_rows(r) is not None)
        summary += f", {rows} row(s) in all tables would change"
    if failed or entries:
        summary += f"; {failed} pair(s) could not be counted, {len(entries)} file(s) set aside"
    return summary


def format_changes(reports: Sequence[RunReport], entries: Sequence[SetAside] = ()) -> str:
    """What a run changed, per product, table and action; then each pair's outcome."""
    dry = any(r.dry_run for r in reports)
    lines: list[str] = []
    changed = _per_table(reports)
    if changed:
        if dry:
            lines.append("A run would change:")
        lines.append(render_table(["product", "table", "action", "rows"], changed))
    lines.append("Dry run: nothing was changed." if dry else "Per customer × product:")
    lines += [_pair_line(r) for r in reports]
    lines += _set_aside_lines(entries)
    failed = [r for r in reports if not r.outcome.complete]
    blocked = sum(r.blocked for r in reports)
    eligible = counted_total(reports)
    if dry:
        if failed or entries or eligible is None:
            lines.append(
                _eligible_summary(reports, entries, "")
                + "; a run without --dry-run would change the rows counted."
            )
        else:
            lines.append(f"{eligible} row(s) eligible; a run without --dry-run would change them.")
    elif failed or entries:
        lines.append(
            f"{sum(r.changed for r in reports)} row(s) changed; {len(failed)} pair(s) did not "
            f"finish and {len(entries)} file(s) were set aside: see above."
        )
    elif not changed and eligible == 0 and not any(r.skipped for r in reports):
        lines.append("Nothing changed: no data was past its retention period.")
    skipped = sum(1 for r in reports if r.skipped is not None)
    if skipped:
        lines.append(
            f"{skipped} pair(s) were run by another process in this tick (leases): see above."
        )
    if blocked and not dry:
        lines.append(
            f"{blocked} row(s) were refused by the database and stay (outcome partial): "
            'docs/operations.md, "Rows blocked".'
        )
    waiting = sum(len(r.awaiting) for r in reports)
    if waiting and not dry:
        lines.append(
            f"{waiting} rule(s) wait for a person's approval: `retention-worker approvals list`."
        )
    return "\n".join(lines)


def _per_table(reports: Sequence[RunReport]) -> list[list[Any]]:
    """[product, table, action, rows] rows, sorted: what a run changed (a dry run: would
    change), added up over customers and rules; tables with no row left out."""
    totals: dict[tuple[str, str, str], int] = {}
    for report in reports:
        for plan in report.rules:
            rows = plan.would_change if report.dry_run else plan.changed
            for table, count in rows.items():
                key = (report.product, table, plan.actions.get(table, plan.action))
                totals[key] = totals.get(key, 0) + count
    return [[*k, v] for k, v in sorted(totals.items()) if v]
