"""The JSON document of `plan --format json`, and the figures it shares with the printed plan.

`plan --format json` prints one document of one shape (worker/report.py prints the same
figures for people):

    {"at": ISO instant (UTC), "dry_run": true,
     "totals": {"pairs", "succeeded", "failed", "interrupted", "set_aside", "eligible",
                "not_counted", "rows", "held", "would_block", "awaiting_approval"},
     "pairs": [{"customer", "product", "outcome", "error", "eligible", "problems", "tables",
                "would_block",
                "rules": [{"rule", "action", "table", "period", "source", "cutoff",
                           "eligible", "tables", "would_block", "block_reasons", "held",
                           "gate", "why", "reasons", "approval_id"}]}],
     "set_aside": [{"file", "customer", "product", "problems": [text, ...]}]}

`outcome` is succeeded, failed, interrupted or set_aside (a real run may also end partial:
rows blocked). A set-aside entry of `pairs` stands
for the pairs a broken file keeps from running: its `customer` (a customer file) or `product`
(a product file: that product for every customer) is null where it is every one, `error`
names the file, `problems` lists them and `eligible` is null; the catalogue sets aside
everything (both null). `eligible` of a pair is null when it was not counted;
`totals.eligible` sums the counted pairs and is null when there were pairs and none was
counted; `totals.not_counted` is the number of pairs entries (failed, interrupted and set
aside) without a count; `totals.pairs` counts the pairs that ran, `totals.set_aside` the
set-aside entries.

`tables` are the rows per table a run would change (table → rows: the subject's, its
dependents', related rows and rows foreign keys cascade to), as `run` counts them in its
summary and audit; `totals.rows` adds them up over the counted pairs. `would_block` are the
eligible rows a run would block at least (the database's keys reach rows it must not touch:
connectors/sqlforesee.py; null for a set-aside entry), `block_reasons` those of a rule per
reason (keys and tables); `tables` leaves them, and what they reach, out.
"""

from __future__ import annotations

import datetime as dt
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


def eligible_rows(report: RunReport) -> int | None:
    """The pair's eligible rows; None when it did not run every rule (its count may be
    partial; a `partial` outcome, rows blocked, did run them all) or
    another process ran it (leases: this process counted nothing)."""
    if not report.outcome.complete or report.skipped is not None:
        return None
    return sum(plan.eligible for plan in report.rules)


def counted_total(reports: Sequence[RunReport]) -> int | None:
    """Eligible rows of the counted pairs; None when there were pairs and none was counted."""
    counted = [e for r in reports if (e := eligible_rows(r)) is not None]
    if reports and not counted:
        return None
    return sum(counted)


def would_rows(report: RunReport) -> int:
    return sum(report.would_change.values())


def _set_aside_pair(entry: SetAside) -> dict[str, Any]:
    return {
        "customer": entry.customer,
        "product": entry.product,
        "outcome": "set_aside",
        "error": f"set aside: {len(entry.problems)} problem(s) in {entry.file}",
        "eligible": None,
        "problems": list(entry.problems),
        "tables": {},
        "would_block": None,
        "rules": [],
    }


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
            "eligible": eligible_rows(r),
            "problems": [],
            "tables": dict(sorted(r.would_change.items())),
            "would_block": r.would_block,
            "rules": [
                {
                    "rule": p.rule,
                    "action": p.action,
                    "table": p.table,
                    "period": p.period,
                    "source": p.source,
                    "cutoff": p.cutoff.isoformat(),
                    "eligible": p.eligible,
                    "tables": dict(sorted(p.would_change.items())),
                    "would_block": p.would_block,
                    "block_reasons": dict(sorted(p.block_reasons.items())),
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
    ] + [_set_aside_pair(e) for e in entries]
    totals = {
        "pairs": len(reports),
        "succeeded": sum(r.outcome is Outcome.SUCCEEDED for r in reports),
        "failed": sum(r.outcome is Outcome.FAILED for r in reports),
        "interrupted": sum(r.outcome is Outcome.INTERRUPTED for r in reports),
        "set_aside": len(entries),
        "eligible": counted_total(reports),
        "not_counted": sum(eligible_rows(r) is None for r in reports) + len(entries),
        "rows": sum(would_rows(r) for r in reports if eligible_rows(r) is not None),
        "held": sum(r.held for r in reports),
        "would_block": sum(r.would_block for r in reports),
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
