"""A configuration folder for the benchmark: the shipped catalogue and FlexKids mapping,
and one generated customer per tenant of the shared product database.

Customers are `bench-00001` … with tenant ids FIRST_TENANT …; they set no settings, so
every rule runs on its shipped default period. The mapping keeps every subject (the worker
verifies every mapped table) and the rules asked for: one (the measured variant) or all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "config"
PRODUCT = "flexkids"
FIRST_TENANT = 1001
OUTSIDER = 999  # a tenant in the shared database that no configured customer owns
TIMEZONE = "Europe/Amsterdam"
DELETE_RULE = "flexkids.invoice.fiscal"
ANONYMISE_RULE = "flexkids.parent.relation-ended"


def tenant_ids(tenants: int) -> range:
    """The tenant ids of `tenants` generated customers: FIRST_TENANT, FIRST_TENANT + 1, …"""
    return range(FIRST_TENANT, FIRST_TENANT + tenants)


def customer_name(tenant: int) -> str:
    return f"bench-{tenant - FIRST_TENANT + 1:05d}"


def write_config(folder: Path, tenants: int, rules: Sequence[str] | None) -> Path:
    """Write catalogue.yaml, products/flexkids.yaml (only `rules`, or all when None) and one
    customers/bench-NNNNN.yaml per tenant into `folder`; returns `folder`."""
    (folder / "products").mkdir(parents=True, exist_ok=True)
    (folder / "customers").mkdir(exist_ok=True)
    (folder / "catalogue.yaml").write_text(
        (SHIPPED / "catalogue.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    mapping = yaml.safe_load((SHIPPED / "products" / f"{PRODUCT}.yaml").read_text("utf-8"))
    if rules is not None:
        mapping["rules"] = [r for r in mapping["rules"] if r["id"] in set(rules)]
        missing = set(rules) - {r["id"] for r in mapping["rules"]}
        if missing:
            raise ValueError(f"the shipped {PRODUCT} mapping has no rule {sorted(missing)}")
    (folder / "products" / f"{PRODUCT}.yaml").write_text(
        yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8"
    )
    for tenant in tenant_ids(tenants):
        name = customer_name(tenant)
        (folder / "customers" / f"{name}.yaml").write_text(
            f"customer: {name}\ntimezone: {TIMEZONE}\n"
            f"products:\n  {PRODUCT}:\n    tenant: {tenant}\n",
            encoding="utf-8",
        )
    return folder
