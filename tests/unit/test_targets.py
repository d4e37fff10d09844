"""worker/targets.py: the offline check of dependents' references against a tenant key, and
the Tables built once per mapping."""

from __future__ import annotations

import gc
from typing import Any

from worker import targets
from worker.config import ProductMapping
from worker.targets import table_for, tables_for, tenant_reference_problems


def mapping(key: list[str], references: dict[str, str], tenancy: dict[str, Any]) -> ProductMapping:
    shared = {"database": {"url_env": "KIDS_DATABASE_URL"}} if "column" in tenancy else {}
    return ProductMapping.model_validate(
        {
            "product": "kids",
            **shared,
            "tenancy": tenancy,
            "subjects": {
                "child": {
                    "kind": "child",
                    "table": "child",
                    "key": key,
                    "dependents": [
                        {"table": "child_note", "references": {"child_id": "id", "org": "org"}},
                        {"table": "child_photo", "references": references},
                    ],
                }
            },
            "rules": [],
        }
    )


def test_references_without_the_tenant_column_of_the_key_are_found_offline() -> None:
    """Key [org, id] and references {child_id: id}: one problem, at that dependent's
    references, with the fix; the dependent that maps org is fine."""
    [(path, message)] = tenant_reference_problems(
        mapping(["org", "id"], {"child_id": "id"}, {"column": "org"})
    )
    assert path == ("subjects", "child", "dependents", 1, "references")
    assert "add `org: org` to its references" in message


def test_a_key_without_the_tenant_column_or_a_database_per_customer_needs_no_more() -> None:
    """Ids unique across tenants, or no tenant column at all: references to id suffice."""
    assert tenant_reference_problems(mapping(["id"], {"child_id": "id"}, {"column": "org"})) == []
    per_customer = mapping(["org", "id"], {"child_id": "id"}, {"per_customer": True})
    assert tenant_reference_problems(per_customer) == []


def test_a_subjects_table_is_built_once_per_mapping_and_anew_for_another() -> None:
    """table_for is asked for every rule of every customer: the same mapping and subject give
    the very same Table; a mapping loaded anew (a reload) that maps the table differently
    gives its own, and a mapping that is gone leaves no entry behind."""
    first = mapping(["id"], {"child_id": "id"}, {"column": "org"})
    subject = first.subjects["child"]
    table = table_for(subject, first)
    assert table_for(subject, first) is table
    assert [d.table for d in table.dependents] == ["child_note", "child_photo"]
    second = mapping(["org", "id"], {"child_id": "id", "org": "org"}, {"column": "org"})
    other = table_for(second.subjects["child"], second)
    assert other is not table and other.key == ("org", "id") and table.key == ("id",)
    assert tables_for(second) == [other]
    gc.collect()  # other tests' mappings left for the collector go first, not below
    entries = len(targets._TABLES)
    del first, subject, second, other
    gc.collect()
    assert len(targets._TABLES) == entries - 2
