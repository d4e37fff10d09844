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
import threading
from typing import Any

from worker.audit import canonical_json
from worker.config import Catalogue, Customer, ProductMapping


def policy_document(
    catalogue: Catalogue, customer: Customer, mapping: ProductMapping
) -> dict[str, Any]:
    """The effective configuration of one customer × product, as plain JSON data."""
    return {
        **policy_document_shared(catalogue, mapping),
        "customer": customer.customer,
        "timezone": customer.timezone,
        "choices": customer.products[mapping.product].model_dump(mode="json"),
    }


def fingerprint(document: dict[str, Any]) -> str:
    """`sha256:<hex>` of the document's canonical JSON."""
    return text_fingerprint(canonical_json(document))


def policy_fingerprint(catalogue: Catalogue, customer: Customer, mapping: ProductMapping) -> str:
    """The fingerprint of one customer × product's policy."""
    return fingerprint(policy_document(catalogue, customer, mapping))


def policy_text(catalogue: Catalogue, customer: Customer, mapping: ProductMapping) -> str:
    """`canonical_json(policy_document(...))`, built from the parts a product's customers
    share (its catalogue entry, the floors and the mapping, each serialised once per
    configuration object and kept) and the customer's own (name, time zone, choices).

    The same text, character for character: a canonical JSON object is its keys in sorted
    order, each followed by its value's canonical text, so the shared values' texts can be
    kept and joined (tests/unit/test_fingerprint.py compares the two for every pair)."""
    shared = _shared_parts(catalogue, mapping)
    own = {
        "choices": customer.products[mapping.product].model_dump(mode="json"),
        "customer": customer.customer,
        "timezone": customer.timezone,
    }
    parts = {**shared, **{key: canonical_json(value) for key, value in own.items()}}
    return "{" + ",".join(canonical_json(k) + ":" + parts[k] for k in sorted(parts)) + "}"


def text_fingerprint(text: str) -> str:
    """`sha256:<hex>` of a policy's canonical JSON text (`policy_text`)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


_SHARED_KEPT = 64
"""Catalogue × mapping objects whose serialised parts are kept (a reload makes new ones)."""
_shared: dict[tuple[int, int], tuple[Catalogue, ProductMapping, dict[str, str]]] = {}
_shared_lock = threading.Lock()


def _shared_parts(catalogue: Catalogue, mapping: ProductMapping) -> dict[str, str]:
    """The canonical texts of the document's values every customer of `mapping` shares,
    kept by the objects' identity (the entry holds them, so an id is not reused meanwhile)."""
    key = (id(catalogue), id(mapping))
    with _shared_lock:
        found = _shared.get(key)
    if found is not None and found[0] is catalogue and found[1] is mapping:
        return found[2]
    document = policy_document_shared(catalogue, mapping)
    parts = {name: canonical_json(value) for name, value in document.items()}
    with _shared_lock:
        if len(_shared) >= _SHARED_KEPT:
            _shared.pop(next(iter(_shared)))
        _shared[key] = (catalogue, mapping, parts)
    return parts


def policy_document_shared(catalogue: Catalogue, mapping: ProductMapping) -> dict[str, Any]:
    """The values of `policy_document` that do not depend on the customer."""
    entry = catalogue.products.get(mapping.product)
    return {
        "product": mapping.product,
        "catalogue": entry.model_dump(mode="json") if entry is not None else None,
        "floors": {name: f.model_dump(mode="json") for name, f in catalogue.floors.items()},
        "mapping": mapping.model_dump(mode="json", by_alias=True),
    }
