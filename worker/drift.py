"""Schema drift: which mapped tables of a product database no longer match their mapping.

A run checks its product database's tables before it changes anything (worker/run.py): a
subject table whose schema drifted (a column gone, a type changed, a key dropped; its
dependents, bases and related tables included) fails its own rules with a message that
says what to fix, and the pair's other rules go on; when no subject table matches, the
whole run stops (`SchemaDrift`). The checks themselves are the connector's `verify_each`
(connectors/sqlschemaview.py, with the catalog fingerprint of connectors/sqlstamp.py).

An idle run may borrow the check (`SchemaCheck`): many customers share one product
database, and most runs of a tick find nothing due. Such a run changes nothing, so it may
take the catalog fingerprint another run of the same database read at most
`RETENTION_SCHEMA_REUSE_SECONDS` ago instead of reading it again. A run reads it itself
before it settles an earlier run's batches, changes a row, or reports drift; the connector
refuses a change until it has. What a borrowed check can miss is drift that landed in
those seconds, for a run that then changes nothing: it is reported by the next run.
"""

from __future__ import annotations

import functools
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
    *,
    reuse_seconds: float = 0.0,
) -> dict[str, str]:
    """Each subject table of `mapping` whose schema does not match it, with the message that
    fails its rules (by table name; empty when all match). `retry(fn, *args)` calls the
    connector within the run's retry budget; `reuse_seconds` goes to `verify_each`. Raises
    SchemaDrift when no subject table matches (nothing could run), and what `verify_each`
    raises (ConnectorError)."""
    found: dict[str, list[str]] = {}
    tables = tables_for(mapping)
    verify = functools.partial(connector.verify_each, reuse_seconds=reuse_seconds)
    checked: Sequence[Sequence[Any]] = retry(verify, tables)
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


class SchemaCheck:
    """A run's drift check (`drifted`), borrowed while the run changes nothing, its own
    before it does (see the module docstring).

    `drift`: as `drifted` returns it. With `reuse_seconds` > 0 the first check may borrow
    a fingerprint another run read that long ago at most; a borrowed check that finds drift
    is made again at once, so drift is only ever reported from the run's own read. Raises
    what `drifted` raises.
    """

    def __init__(
        self,
        connector: Connector,
        mapping: ProductMapping,
        retry: Callable[..., Any],
        *,
        reuse_seconds: float = 0.0,
    ) -> None:
        self._connector = connector
        self._mapping = mapping
        self._retry = retry
        try:
            self.drift = drifted(connector, mapping, retry, reuse_seconds=reuse_seconds)
        except SchemaDrift:
            if not self.borrowed:
                raise
            self.drift = {}
            self.confirm()  # raises SchemaDrift again if this run's own read agrees
            return
        if self.drift:
            self.confirm()

    @property
    def borrowed(self) -> bool:
        """Whether the check in force was borrowed (the connector made no query for it)."""
        read = self._connector.schema_read()
        return read is not None and read.borrowed

    def confirm(self) -> bool:
        """Check again with the run's own read, unless the check in force is its own; True
        when the fingerprint differs from the borrowed one (what the run counted on the
        borrowed schema is to be counted again). Raises what `drifted` raises."""
        read = self._connector.schema_read()
        if read is None or not read.borrowed:
            return False
        self.drift = drifted(self._connector, self._mapping, self._retry)
        now = self._connector.schema_read()
        return now is None or now.stamp != read.stamp
