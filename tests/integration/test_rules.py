"""Every rule of FlexKids and Konnect on real PostgreSQL, at its exact cutoff.

For each rule, rows are seeded one day (or one second) either side of the cutoff for
both customers; after a run, exactly the expected primary keys are deleted or
anonymised, and every other row of every table, including the other customer's, is
byte-for-byte what it was. The expected cutoffs are written out by hand (2026-11-28,
Europe/Amsterdam) rather than computed by the code under test.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.rows import CREATED, flexkids_row, konnect_row
from tests.support import NOW, fixture_config, insert, run_once, snapshot
from worker.events import Outcome

D = dt.date
T = dt.datetime  # naive timestamps are UTC by convention
KDV, VL = "kdv-zonnestraal", "bso-de-vlinder"
TENANT = {KDV: 1042, VL: 2077}
KONNECT_ENV = {KDV: "KONNECT_ZONNESTRAAL_DATABASE_URL", VL: "KONNECT_DE_VLINDER_DATABASE_URL"}


# rule → (product, table, {customer: [(basis, fate), ...]}); fates: deleted, kept,
# anonymised (every masked column of the rule), health (health notes only).
CASES: dict[str, tuple[str, str, dict[str, list[tuple[Any, str]]]]] = {
    "flexkids.user.inactive": (
        "flexkids",
        "app_user",
        {
            # 12 months (kdv's setting; vlinder's default): cutoff 2025-11-28 00:00 CET = 23:00Z
            KDV: [
                (T(2025, 11, 27, 22, 59, 59), "deleted"),
                (T(2025, 11, 27, 23, 0), "kept"),
                (None, "kept"),
            ],
            VL: [(T(2025, 11, 27, 22, 59, 59), "deleted"), (T(2025, 11, 27, 23, 0), "kept")],
        },
    ),
    "flexkids.parent.relation-ended": (
        "flexkids",
        "parent",
        {
            KDV: [(D(2024, 11, 27), "anonymised"), (D(2024, 11, 28), "kept"), (None, "kept")],
            VL: [(D(2025, 5, 27), "anonymised"), (D(2025, 5, 28), "kept")],  # 18 months
        },
    ),
    "flexkids.child.deregistered.health": (
        "flexkids",
        "child",
        {
            KDV: [(D(2026, 10, 27), "health"), (D(2026, 10, 28), "kept"), (None, "kept")],
            VL: [(D(2026, 10, 27), "health"), (D(2026, 10, 28), "kept")],
        },
    ),
    "flexkids.child.deregistered.remove": (
        "flexkids",
        "child",
        {
            KDV: [(D(2023, 11, 27), "deleted"), (D(2023, 11, 28), "health")],  # 36 months
            VL: [(D(2025, 11, 27), "deleted"), (D(2025, 11, 28), "health")],  # 12 months
        },
    ),
    "flexkids.invoice.fiscal": (
        "flexkids",
        "invoice",
        {
            KDV: [(D(2019, 11, 27), "deleted"), (D(2019, 11, 28), "kept")],
            VL: [(D(2019, 11, 27), "deleted"), (D(2019, 11, 28), "kept")],
        },
    ),
    "flexkids.staff.employment-ended": (
        "flexkids",
        "staff",
        {
            KDV: [(D(2019, 11, 27), "anonymised"), (D(2019, 11, 28), "kept"), (None, "kept")],
            VL: [(D(2018, 11, 27), "anonymised"), (D(2018, 11, 28), "kept")],  # 96 months
        },
    ),
    "konnect.child.left": (
        "konnect",
        "child",
        {
            KDV: [(D(2025, 11, 27), "deleted"), (D(2025, 11, 28), "kept"), (None, "kept")],
            VL: [(D(2026, 5, 27), "deleted"), (D(2026, 5, 28), "kept")],  # 6 months
        },
    ),
    "konnect.parent.inactive": (
        "konnect",
        "parent",
        {
            KDV: [(T(2025, 11, 27, 22, 59, 59), "anonymised"), (T(2025, 11, 27, 23, 0), "kept")],
            # 6 months: 2026-05-28 00:00 CEST = 2026-05-27 22:00Z
            VL: [
                (T(2026, 5, 27, 21, 59, 59), "anonymised"),
                (T(2026, 5, 27, 22, 0), "kept"),
                (None, "kept"),
            ],
        },
    ),
    "konnect.staff.left": (
        "konnect",
        "staff",
        {
            KDV: [(D(2025, 11, 27), "anonymised"), (D(2025, 11, 28), "kept")],
            VL: [(D(2026, 5, 27), "anonymised"), (D(2026, 5, 28), "kept")],
        },
    ),
    "konnect.account.end-of-service": (
        "konnect",
        "account",
        {
            # kdv's service ended 2026-06-30: + 90 days = 2026-09-28 < today: every account goes.
            KDV: [(T(2026, 11, 27, 8, 0), "deleted"), (None, "deleted")],
            VL: [(T(2020, 1, 1), "kept"), (None, "kept")],  # no end of service: nothing
        },
    ),
}

DEPENDENTS = {
    ("flexkids", "app_user"): ("login_event", "user_id"),
    ("flexkids", "child"): ("child_photo", "child_id"),
    ("konnect", "child"): ("child_media", "child_id"),
}


def _dependent_row(table: str, i: int, parent: int) -> dict[str, Any]:
    if table == "login_event":
        return {
            "id": i,
            "user_id": parent,
            "occurred_at": T(2024, 1, 1),
            "ip_address": "192.0.2.1",
            "succeeded": True,
        }
    if table == "child_photo":
        return {"id": i, "child_id": parent, "file_name": f"p{i}.jpg", "taken_at": T(2024, 1, 1)}
    return {
        "id": i,
        "child_id": parent,
        "file_name": f"m{i}.jpg",
        "media_type": "photo",
        "created_at": CREATED,
    }


def _masked(rule_id: str) -> dict[str, Any]:
    """The masks of a rule, read from the shipped mapping (what the customer agreed to)."""
    config = fixture_config()
    for mapping in config.products.values():
        for rule in mapping.rules:
            for stage in rule.stages:
                if rule.stage_id(stage) == rule_id:
                    return dict(stage.with_)
    raise AssertionError(rule_id)


def _expect_masked(column: str, mask: Any, before: Any) -> Any:
    """The value a mask must leave (keyed hashes are checked by shape: see below)."""
    strategy = str(mask.strategy)
    if before is None or strategy == "null":
        return None
    if strategy == "fixed":
        return mask.text
    if strategy == "year":
        return D(before.year, 1, 1)
    if strategy == "postcode_digits":
        return "".join(ch for ch in before if ch.isdigit())[:4]
    return "keyed_hash"


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_changes_exactly_the_rows_past_its_cutoff(
    rule_id: str, product_dbs: dict[str, str], state: Any
) -> None:
    """A rule deletes or anonymises exactly the rows past its cutoff; all else is untouched."""
    product, table, by_customer = CASES[rule_id]
    fates: dict[tuple[str, int], str] = {}  # (database variable, id) → fate
    dependent = DEPENDENTS.get((product, table))
    next_id = 1
    for customer, rows in by_customer.items():
        variable = "FLEXKIDS_DATABASE_URL" if product == "flexkids" else KONNECT_ENV[customer]
        seeded, children = [], []
        for basis, fate in rows:
            if product == "flexkids":
                seeded.append(flexkids_row(table, next_id, TENANT[customer], basis))
            else:
                seeded.append(konnect_row(table, next_id, basis))
            if dependent:
                children += [
                    _dependent_row(dependent[0], next_id * 10 + n, next_id) for n in range(2)
                ]
            fates[(variable, next_id)] = fate
            next_id += 1
        insert(product_dbs[variable], table, seeded)
        if children:
            insert(product_dbs[variable], dependent[0], children)  # type: ignore[index]
    config = fixture_config()
    before = {v: snapshot(u) for v, u in product_dbs.items()}

    reports = run_once(config, product_dbs, state)

    assert {r.outcome for r in reports} == {Outcome.SUCCEEDED}
    after = {v: snapshot(u) for v, u in product_dbs.items()}
    masks = _masked(rule_id)
    health = _masked("flexkids.child.deregistered.health")
    for variable, tables in before.items():
        for name, rows in tables.items():
            for key, old in rows.items():
                fate = fates.get((variable, key[0]), "kept") if name == table else "kept"
                if dependent and name == dependent[0]:
                    parent_id = old[1]
                    parent_fate = fates.get((variable, parent_id), "kept")
                    fate = "deleted" if parent_fate == "deleted" else "kept"
                new = after[variable][name].get(key)
                if fate == "deleted":
                    assert new is None, f"{variable} {name} {key} should be deleted"
                    continue
                assert new is not None, f"{variable} {name} {key} should still exist"
                if fate == "kept":
                    assert new == old, f"{variable} {name} {key} must be unchanged"
                    continue
                cols = snapshot_columns(product_dbs[variable], name)
                expected_masks = masks if fate == "anonymised" else health
                for col, old_value, new_value in zip(cols, old, new, strict=True):
                    if col in expected_masks:
                        want = _expect_masked(col, expected_masks[col], old_value)
                        if want == "keyed_hash":
                            assert new_value.startswith("anon-") and len(new_value) == 25
                            assert new_value != old_value
                        else:
                            assert new_value == want, f"{name}.{col} of {key}"
                    else:
                        assert new_value == old_value, f"{name}.{col} of {key} must not change"
    # A second run finds nothing and reports zero; nothing changes.
    again = run_once(config, product_dbs, state)
    assert [r.changed for r in again] == [0] * len(again)
    assert all(p.eligible == 0 for r in again for p in r.rules)
    assert {v: snapshot(u) for v, u in product_dbs.items()} == after


def snapshot_columns(url: str, table: str) -> list[str]:
    from tests.support import columns

    return columns(url, table)


def test_plan_changes_nothing_and_counts_what_run_changes(
    product_dbs: dict[str, str], state: Any
) -> None:
    """A dry run leaves every database as it was and counts exactly what the run then changes."""
    for rule_id, (product, table, by_customer) in CASES.items():
        if product != "flexkids" or rule_id.endswith(".health"):
            continue
        rows = [
            flexkids_row(table, 1000 + 10 * i + n, TENANT[c], basis)
            for i, c in enumerate(by_customer)
            for n, (basis, _) in enumerate(by_customer[c])
        ]
        insert(product_dbs["FLEXKIDS_DATABASE_URL"], table, rows)
    config = fixture_config()
    before = {v: snapshot(u) for v, u in product_dbs.items()}

    planned = run_once(config, product_dbs, state, dry_run=True)

    assert {v: snapshot(u) for v, u in product_dbs.items()} == before
    eligible = {(r.customer, p.rule): p.eligible for r in planned for p in r.rules}
    done = run_once(config, product_dbs, state)
    changed = {(r.customer, p.rule): p.changed.get(p.table, 0) for r in done for p in r.rules}
    assert eligible[(KDV, "flexkids.invoice.fiscal")] == 1
    assert eligible[(VL, "flexkids.parent.relation-ended")] == 1
    assert eligible == changed
    assert NOW.tzinfo is not None
