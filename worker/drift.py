"""Schema drift: which mapped tables of a product database no longer match their mapping.

A run checks its product database's tables before it changes anything (worker/run.py): a
subject table whose schema drifted (a column gone, a type changed, a key dropped; its
dependents, bases and related tables included) fails its own rules with a message that
says what to fix, and the pair's other rules go on; when no subject table matches, the
whole run stops (`SchemaDrift`). The checks themselves are the connector's `verify_each`
(connectors/sql.py, with the catalog fingerprint of connectors/sqlstamp.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from connectors.base import Connector
from worker.config import ProductMapping
from worker.errors import RetentionError
from worker.targets import tables_for


class SchemaDrift(RetentionError):
    """The product database no longer matches its mapping."""


def drifted(
    connector: Connector,
    mapping: ProductMapping,
    retry: Callable[..., Any],
) -> dict[str, str]:
    """Each subject table of `mapping` whose schema does not match it, with the message that
    fails its rules (by table name; empty when all match). `retry(fn, *args)` calls the
    connector within the run's retry budget. Raises SchemaDrift when no subject table
    matches (nothing could run), and what `verify_each` raises (ConnectorError)."""
    found: dict[str, list[str]] = {}
    tables = tables_for(mapping)
    checked: Sequence[Sequence[Any]] = retry(connector.verify_each, tables)
    for table, problems in zip(tables, checked, strict=True):
        fatal = [str(p) for p in problems if p.fatal]
        if fatal:
            found[table.name] = fatal

    def drift(listed: list[str]) -> str:
        return (
            f"the {mapping.product} database does not match config/products/"
            f"{mapping.product}.yaml: {'; '.join(dict.fromkeys(listed))}; fix the mapping "
            "or migrate the database"
        )

    if found and len(found) == len(mapping.subjects):
        raise SchemaDrift(drift([p for listed in found.values() for p in listed]))
    return {table: drift(listed) for table, listed in found.items()}
