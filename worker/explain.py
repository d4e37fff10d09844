"""`plan --explain`: the database's plan for each rule's selection, and the index that helps.

For every customer × product and every rule, the selection of the rule's first batch (the
statement `run` sends: tenant, cutoff, conditions; see `connectors.sqlexplain`) is explained
by the product database itself. Where no index serves the selection (none leads with the time
basis, or with the tenant column and then the time basis) and the table is large
(`LARGE_TABLE_ROWS` by the database's own estimate), the `CREATE INDEX` that would serve it is
printed. Nothing is changed, and only names and the optimiser's estimates
are printed: never a row's value.
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
        """The `CREATE INDEX` to print: only for a large table (or one whose size the
        database does not know) that no index serves, whether the plan reads it whole or
        reads all of the tenant's rows through an index on the tenant column alone."""
        ex = self.explained
        if ex is None or ex.advice is None:
            return None
        if ex.table_rows is not None and ex.table_rows < LARGE_TABLE_ROWS:
            return None
        return ex.advice


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
            size = rule.explained.table_rows
            rows = "unknown" if size is None else f"{size:,}"
            scan = "reads the whole table" if rule.explained.scans else "uses an index"
            out.append(f"    the selection {scan} (about {rows} rows in {rule.table})")
            if rule.advice is not None:
                advised += 1
                out.append(f"    advice: {rule.advice}")
    out.append(
        f"\n{advised} index{'es' if advised != 1 else ''} advised"
        f" (tables of {LARGE_TABLE_ROWS:,} rows or more that no index serves)."
    )
    return "\n".join(out)
