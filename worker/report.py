"""What `plan` and `run --once` print: per pair, what was eligible, what changed, what failed.

Every summary is honest about each customer × product: a failed pair or a dry run is never
summed up as "nothing was past its retention period", and pairs set aside by configuration
problems are listed with the problems. `plan --format json` prints one document of one shape:

    {"at": ISO instant (UTC), "dry_run": true,
     "totals": {"pairs", "succeeded", "failed", "interrupted", "set_aside", "eligible"},
     "pairs": [{"customer", "product", "outcome", "error", "eligible",
                "rules": [{"rule", "action", "table", "period", "source", "cutoff",
                           "eligible"}]}],
     "set_aside": [{"file", "customer", "product", "problems": [text, ...]}]}

`outcome` is succeeded, failed or interrupted (a real run may also end partial: rows
blocked); `customer` or `product` of a set-aside entry is null when the problem is in the other
kind of file (a product file sets that product aside for every customer).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from worker.errors import ConfigProblem
from worker.events import Outcome
from worker.runreport import RunReport


@dataclass(frozen=True)
class SetAside:
    """A configuration file whose problems keep a customer or a product from running."""

    file: str
    customer: str | None
    product: str | None
    problems: tuple[str, ...]


def set_aside(problems: Sequence[ConfigProblem]) -> list[SetAside]:
    """Group configuration problems by file: a customer file sets that customer aside, a
    product file that product, the catalogue everything."""
    by_file: dict[str, list[str]] = {}
    for problem in problems:
        where = f"{problem.path}: {problem.message}" if problem.path else problem.message
        by_file.setdefault(problem.file, []).append(where)
    found: list[SetAside] = []
    for file, texts in by_file.items():
        path = PurePath(file)
        folder = path.parent.name
        customer = path.stem if folder == "customers" else None
        product = path.stem if folder == "products" else None
        found.append(SetAside(file, customer, product, tuple(texts)))
    return found


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


def _eligible(report: RunReport) -> int:
    return sum(plan.eligible for plan in report.rules)


def _pair_line(report: RunReport) -> str:
    """One line per pair: outcome, eligible rows, rows changed (or would change), rows held,
    rules waiting for approval, error."""
    outcome = str(report.outcome).upper() if report.outcome is not Outcome.SUCCEEDED else "ok"
    figures = f"{_eligible(report)} row(s) eligible"
    if not report.dry_run:
        figures += f", {report.changed} row(s) changed"
    if report.held:
        figures += f", {report.held} held"
    if report.blocked:
        figures += f", {report.blocked} blocked"
    if report.awaiting:
        verb = "would wait" if report.dry_run else "wait"
        figures += f", {len(report.awaiting)} rule(s) {verb} for approval"
    note = f": {report.error}" if report.error else ""
    lines = [f"  {report.customer} × {report.product}: {outcome}; {figures}{note}"]
    for plan in report.rules:
        if plan.blocked:
            lines.append(f"    {plan.rule}: {plan.blocked} row(s) blocked (batch.blocked)")
        if plan.gate in ("held", "awaiting_approval"):
            ident = f" ({plan.approval_id})" if plan.approval_id else ""
            lines.append(
                f"    {plan.rule}: {_gate_text(plan.gate)}{ident}: {'; '.join(plan.reasons)}"
            )
    return "\n".join(lines)


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
        lines.append(f"  SET ASIDE {who}: {len(entry.problems)} problem(s) in {entry.file}")
    return lines


def plan_document(
    reports: Sequence[RunReport], at: dt.datetime, entries: Sequence[SetAside] = ()
) -> dict[str, Any]:
    """The JSON form of a plan (shape in the module docstring)."""
    pairs = [
        {
            "customer": r.customer,
            "product": r.product,
            "outcome": str(r.outcome),
            "error": r.error,
            "eligible": _eligible(r),
            "rules": [
                {
                    "rule": p.rule,
                    "action": p.action,
                    "table": p.table,
                    "period": p.period,
                    "source": p.source,
                    "cutoff": p.cutoff.isoformat(),
                    "eligible": p.eligible,
                    "held": p.held,
                    "gate": p.gate,
                    "why": p.why,
                    "reasons": list(p.reasons),
                    "approval_id": p.approval_id,
                }
                for p in r.rules
            ],
        }
        for r in reports
    ]
    totals = {
        "pairs": len(reports),
        "succeeded": sum(r.outcome is Outcome.SUCCEEDED for r in reports),
        "failed": sum(r.outcome is Outcome.FAILED for r in reports),
        "interrupted": sum(r.outcome is Outcome.INTERRUPTED for r in reports),
        "set_aside": len(entries),
        "eligible": sum(_eligible(r) for r in reports),
        "held": sum(r.held for r in reports),
        "awaiting_approval": sum(len(r.awaiting) for r in reports),
    }
    return {
        "at": at.astimezone(dt.UTC).isoformat(),
        "dry_run": True,
        "totals": totals,
        "pairs": pairs,
        "set_aside": [
            {
                "file": e.file,
                "customer": e.customer,
                "product": e.product,
                "problems": list(e.problems),
            }
            for e in entries
        ],
    }


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
    lines.append(f"Plan as of {at.astimezone(dt.UTC).isoformat()} (nothing is changed):")
    lines += [_pair_line(r) for r in reports]
    lines += _set_aside_lines(entries)
    total = sum(_eligible(r) for r in reports)
    failed = sum(r.outcome is not Outcome.SUCCEEDED for r in reports)
    summary = f"{total} row(s) eligible now in {len(reports) - failed} pair(s)"
    if failed or entries:
        summary += f"; {failed} pair(s) could not be counted, {len(entries)} file(s) set aside"
    lines.append(summary + "; nothing was changed.")
    return "\n".join(lines)


def format_changes(reports: Sequence[RunReport], entries: Sequence[SetAside] = ()) -> str:
    """What a run changed, per product, table and action; then each pair's outcome."""
    dry = any(r.dry_run for r in reports)
    totals: dict[tuple[str, str, str], int] = {}
    for report in reports:
        for plan in report.rules:
            for table, count in plan.changed.items():
                key = (report.product, table, plan.action)
                totals[key] = totals.get(key, 0) + count
    lines: list[str] = []
    changed = {k: v for k, v in sorted(totals.items()) if v}
    if changed:
        lines.append(
            render_table(
                ["product", "table", "action", "rows"], [[*k, v] for k, v in changed.items()]
            )
        )
    lines.append("Dry run: nothing was changed." if dry else "Per customer × product:")
    lines += [_pair_line(r) for r in reports]
    lines += _set_aside_lines(entries)
    failed = [r for r in reports if not r.outcome.complete]
    blocked = sum(r.blocked for r in reports)
    eligible = sum(_eligible(r) for r in reports)
    if dry:
        lines.append(f"{eligible} row(s) eligible; a run without --dry-run would change them.")
    elif failed or entries:
        lines.append(
            f"{sum(r.changed for r in reports)} row(s) changed; {len(failed)} pair(s) did not "
            f"finish and {len(entries)} file(s) were set aside: see above."
        )
    elif not changed and eligible == 0:
        lines.append("Nothing changed: no data was past its retention period.")
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
