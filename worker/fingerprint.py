"""Which policy a run followed: a fingerprint of its effective configuration.

The policy of one customer × product is everything that decides what a run may change: the
catalogue's entry for the product and its legal floors, the product mapping, and the
customer's own choices for that product (tenant, settings, dates, breaker limits) with the
customer's time zone. Its fingerprint is `sha256:` + the lowercase hex SHA-256 of the policy
document's canonical JSON (sorted keys, no whitespace, UTF-8; worker/audit.py). Every
`run.started` record carries it, so an auditor can tell which settings a deletion followed,
and match it with a version of the configuration files.
"""

from __future__ import annotations

import hashlib
from typing import Any

from worker.audit import canonical_json
from worker.config import Catalogue, Customer, ProductMapping


def policy_document(
    catalogue: Catalogue, customer: Customer, mapping: ProductMapping
) -> dict[str, Any]:
    """The effective configuration of one customer × product, as plain JSON data."""
    entry = catalogue.products.get(mapping.product)
    return {
        "product": mapping.product,
        "catalogue": entry.model_dump(mode="json") if entry is not None else None,
        "floors": {name: f.model_dump(mode="json") for name, f in catalogue.floors.items()},
        "mapping": mapping.model_dump(mode="json", by_alias=True),
        "customer": customer.customer,
        "timezone": customer.timezone,
        "choices": customer.products[mapping.product].model_dump(mode="json"),
    }


def fingerprint(document: dict[str, Any]) -> str:
    """`sha256:<hex>` of the document's canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def policy_fingerprint(catalogue: Catalogue, customer: Customer, mapping: ProductMapping) -> str:
    """The fingerprint of one customer × product's policy."""
    return fingerprint(policy_document(catalogue, customer, mapping))
