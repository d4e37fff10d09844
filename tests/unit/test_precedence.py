"""Precedence, written down in docs/approvals.md and worker/policy.py, and proved here:
a hold beats everything (tests/integration/test_gate.py); then the legal floor; then the
customer's setting; then the default; between two rules on one column the longest wins."""

from __future__ import annotations

from typing import Any

from tests import kidsapp
from worker.config import Catalogue, Customer, ProductMapping
from worker.periods import Period, Unit
from worker.policy import Source, effective_rules

FLOORED = {
    **kidsapp.CATALOGUE,
    "floors": {"fiscal": {"period": "7y", "applies_to": ["health"], "reason": "test floor"}},
}


def rules(months: int | None, catalogue: dict[str, Any] = kidsapp.CATALOGUE, **rule: Any) -> Any:
    """Effective rules built from models directly: no cross-file check refuses a setting
    below the floor here, so the run-time precedence itself is what is tested."""
    mapping = ProductMapping.model_validate(kidsapp.mapping(rules=[kidsapp.rule(**rule)]))
    settings = {"child_months": months} if months is not None else {}
    customer = Customer.model_validate(
        {"customer": "kdv-a", "products": {"kidsapp": {"tenant": 1, "settings": settings}}}
    )
    return effective_rules(Catalogue.model_validate(catalogue), customer, mapping)


def test_the_customer_setting_beats_the_default() -> None:
    (rule,) = rules(36)
    assert (rule.period, rule.source) == (Period(36, Unit.MONTHS), Source.CUSTOMER)
    (rule,) = rules(None)
    assert (rule.period, rule.source) == (Period(24, Unit.MONTHS), Source.DEFAULT)


def test_the_floor_beats_the_customer_setting_and_the_default() -> None:
    """A delete touching a floored category waits the floor's 7 years whatever is set."""
    (rule,) = rules(12, FLOORED)
    assert (rule.period, rule.source, rule.floors) == (
        Period(7, Unit.YEARS),
        Source.FLOOR,
        ("fiscal",),
    )
    (longer,) = rules(120, FLOORED)
    assert (longer.period, longer.source) == (Period(120, Unit.MONTHS), Source.CUSTOMER)


def test_two_rules_on_one_column_overlap_and_stages_of_one_rule_do_not() -> None:
    """Overlaps: a delete with any rule of its table; two anonymise rules sharing a column;
    never two stages of one phased rule, never disjoint masks."""
    mask_name = {
        "id": "a.name",
        "subject": "child",
        "action": "anonymise",
        "after": {"date": "left", "period": "1m"},
        "with": {"name": "null"},
    }
    mask_health = {**mask_name, "id": "a.health", "with": {"health": "null"}}
    phased = {
        "id": "a.phased",
        "subject": "child",
        "after": {"date": "left"},
        "stages": [
            {"stage": "early", "period": "1m", "action": "anonymise", "with": {"health": "null"}},
            {"stage": "late", "period": "24m", "action": "delete"},
        ],
    }
    mapping = ProductMapping.model_validate(
        kidsapp.mapping(rules=[kidsapp.rule(), mask_name, mask_health, phased])
    )
    customer = Customer.model_validate(
        {"customer": "kdv-a", "products": {"kidsapp": {"tenant": 1}}}
    )
    found = {
        r.id: set(r.overlaps)
        for r in effective_rules(Catalogue.model_validate(kidsapp.CATALOGUE), customer, mapping)
    }
    assert found["a.name"] == {kidsapp.RULE, "a.phased.late"}
    assert found["a.health"] == {kidsapp.RULE, "a.phased.early", "a.phased.late"}
    assert found["a.phased.early"] == {kidsapp.RULE, "a.health"}
    assert found[kidsapp.RULE] == {"a.name", "a.health", "a.phased.early", "a.phased.late"}
    assert "a.phased.late" not in found["a.phased.early"]
