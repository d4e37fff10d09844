"""Printing run reports: the plan table, the JSON form, and what changed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from worker.events import Outcome
from worker.run import RunReport


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
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


def plan_rows(reports: Sequence[RunReport]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for report in reports:
        if report.outcome is Outcome.FAILED:
            rows.append(
                {"customer": report.customer, "product": report.product, "error": report.error}
            )
            continue
        for plan in report.rules:
            rows.append(
                {
                    "customer": report.customer,
                    "product": report.product,
                    "rule": plan.rule,
                    "action": plan.action,
                    "table": plan.table,
                    "period": plan.period,
                    "source": plan.source,
                    "cutoff": plan.cutoff.isoformat(),
                    "eligible": plan.eligible,
                }
            )
    return rows


def format_plan(reports: Sequence[RunReport], fmt: str) -> str:
    rows = plan_rows(reports)
    if fmt == "json":
        return json.dumps(rows, indent=2)
    ok = [r for r in rows if "error" not in r]
    text = _table(
        ["customer", "product", "rule", "action", "period", "cutoff", "eligible"],
        [
            [
                r["customer"],
                r["product"],
                r["rule"],
                r["action"],
                r["period"],
                r["cutoff"],
                r["eligible"],
            ]
            for r in ok
        ],
    )
    failed = [
        f"FAILED {r['customer']} × {r['product']}: {r['error']}" for r in rows if "error" in r
    ]
    total = sum(r["eligible"] for r in ok)
    return "\n".join([text, *failed, f"{total} row(s) eligible now; nothing was changed."])


def format_changes(reports: Sequence[RunReport]) -> str:
    """What a run changed, per product, table and action; and each pair's outcome."""
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
            _table(["product", "table", "action", "rows"], [[*k, v] for k, v in changed.items()])
        )
    else:
        lines.append("Nothing changed: no data was past its retention period.")
    for report in reports:
        note = f" ({report.error})" if report.error else ""
        lines.append(
            f"{report.customer} × {report.product}: {report.outcome}, "
            f"{report.changed} row(s) changed{note}"
        )
    return "\n".join(lines)
