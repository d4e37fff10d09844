"""`plan --explain`: the database's plan for each rule's selection, and the index that helps.

For every customer × product and every rule, the selection of the rule's first batch (the
statement `run` sends: tenant, cutoff, conditions; see `connectors.sqlexplain`) is explained
by the product database itself. Where the plan reads the table through no index that serves
the selection (one that starts with the tenant column and holds the time basis; see
`connectors.sqladvice`: a table scan, the primary key or a one-column index with the tenant or
date test left to a filter) and the table is large (`LARGE_TABLE_ROWS` by the database's own
estimate), the `CREATE INDEX` on (tenant column, time basis) is printed, or, when that index
exists and the plan passes it by, the advice to refresh the statistics. A rule whose time
basis is not one column of its table gets a note saying why nothing is advised. Nothing is
changed, and only names and the optimiser's estimates are printed: never a row's value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from connectors.base import ConnectorError
from connectors.sqlexplain import LARGE_TABLE_ROWS, Explained
from worker.config import Customer, ProductMapping
from worker.errors import RetentionError
from worker.policy import effective_rules, rule_cutoff
from worker.run import Runner
from worker.targets import overlapping, target_for


@dataclass(frozen=True)
class RuleExplained:
    """One rule's selection plan; `explained` None when the connector has no planner,
    `error` the reason when the database could not explain it."""

    rule: str
    table: str
    explained: Explained | None
    error: str | None = None

    @property
    def advice(self) -> str | None:
        """The advice to print: only for a large table (or one whose size the database does
        not know) whose selection the plan reads through no index that serves it (see
        `connectors.sqladvice`)."""
        ex = self.explained
        if ex is None or ex.verdict.advice is None:
            return None
        if ex.table_rows is not None and ex.table_rows < LARGE_TABLE_ROWS:
            return None
        return ex.verdict.advice

    @property
    def creates(self) -> bool:
        """True when `advice` is to create an index."""
        return (
            self.advice is not None
            and self.explained is not None
            and bool(self.explained.verdict.creates)
        )


@dataclass(frozen=True)
class PairExplained:
    """The plans of one customer × product's rules; `error` set when it could not be
    opened (then `rules` is empty)."""

    customer: str
    product: str
    rules: tuple[RuleExplained, ...]
    error: str | None = None


def explain_pairs(
    runner: Runner, pairs: Iterable[tuple[Customer, ProductMapping]], now: dt.datetime
) -> list[PairExplained]:
    """Explain every rule's selection of every pair, as `runner` would select at `now`
    (UTC, aware). A pair that cannot be reached is reported, never raised."""
    found: list[PairExplained] = []
    for customer, mapping in pairs:
        try:
            connector = runner.connect(customer, mapping)
            connector.open()
        except (ConnectorError, RetentionError) as exc:
            found.append(PairExplained(customer.customer, mapping.product, (), str(exc)))
            continue
        rules: list[RuleExplained] = []
        try:
            chosen = customer.products[mapping.product]
            effective = effective_rules(runner.catalogue, customer, mapping)
            by_id = {r.id: r for r in effective}
            for rule in effective:
                cutoff = rule_cutoff(rule, now, customer.timezone)
                also = overlapping(rule, by_id, now, customer.timezone)
                target = target_for(rule, mapping, chosen, cutoff, also)
                limit = runner.batch_size or mapping.batch_size
                try:
                    explained = connector.explain(target, limit)
                except (ConnectorError, RetentionError) as exc:
                    rules.append(RuleExplained(rule.id, target.table.name, None, str(exc)))
                    continue
                rules.append(RuleExplained(rule.id, target.table.name, explained))
        finally:
            connector.close()
        found.append(PairExplained(customer.customer, mapping.product, tuple(rules)))
    return found


def format_explained(pairs: list[PairExplained]) -> str:
    """The plans as text: per pair, per rule, the database's plan lines indented, then the
    advice. Ends with a line counting the indexes advised."""
    out: list[str] = ["", "Query plans of each rule's selection (plan --explain):"]
    advised = 0
    for pair in pairs:
        out.append(f"\n{pair.customer} × {pair.product}")
        if pair.error is not None:
            out.append(f"  not explained: {pair.error}")
            continue
        for rule in pair.rules:
            out.append(f"  rule {rule.rule} on {rule.table}:")
            if rule.error is not None:
                out.append(f"    not explained: {rule.error}")
                continue
            if rule.explained is None:
                out.append("    this connector has no query planner (in memory)")
                continue
            out.extend(f"    | {line}" for line in rule.explained.lines)
            verdict = rule.explained.verdict
            size = rule.explained.table_rows
            rows = "unknown" if size is None else f"{size:,}"
            serves = ", which serves it" if verdict.served else ""
            out.append(
                f"    the selection {verdict.reads}{serves} (about {rows} rows in {rule.table})"
            )
            if verdict.note is not None:
                out.append(f"    {verdict.note}")
            if rule.advice is not None:
                advised += int(rule.creates)
                out.append(f"    advice: {rule.advice}")
    out.append(
        f"\n{advised} index{'es' if advised != 1 else ''} advised"
        f" (tables of {LARGE_TABLE_ROWS:,} rows or more whose plan searches no index on"
        " the tenant column and the time basis)."
    )
    return "\n".join(out)
