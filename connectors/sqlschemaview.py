"""What the SQL connector knows of the schema: the reflected tables, their check against the
mapping (`verify_each`), the foreign keys, and whether the check in force was the run's own.

`SqlSchemaView` sits between `connectors.sqlpreview.SqlPreviews` and
`connectors.sql.SqlConnector`, which supplies `engine`, `dialect`, `engine_key`, `_engines`
(the process's cache, connectors/engines.py, or None) and `_wrap`. With the cache, a check
reads one fingerprint of the catalog (or borrows a recent one: worker/drift.py) and reflects
only when it changed; the problems it finds are kept with that reflection, so a warm check
compares no table again. A connector whose check was borrowed refuses to change rows
(`_own_schema`) until it has made its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from connectors import sqlbasis
from connectors.base import (
    ConnectorError,
    Dependent,
    ForeignKeyRef,
    Problem,
    SchemaError,
    SchemaRead,
    Table,
    TableSchema,
)
from connectors.engines import Engines, ForeignKeys
from connectors.sqlinherit import inherited_key, note_inherited
from connectors.sqlpreview import SqlPreviews
from connectors.sqlschema import (
    all_foreign_keys,
    every_foreign_key_to,
    foreign_keys_to,
    outside_keys_to,
    table_schema,
)
from connectors.sqlverify import verify_table, verify_tenancy

# Results of `verify_each` kept per reflection (one per mapping's table specs, in practice).
VERIFIED_PER_SCHEMA = 64


class SqlSchemaView(SqlPreviews):
    """The schema side of the SQL connector (see the module docstring)."""

    _engines: Engines | None
    engine_key: str

    def _forget_schema(self) -> None:
        """Start with nothing known of the schema (at creation and `close`)."""
        self._metadata = sa.MetaData()
        self._own = self._metadata  # where `_table` reflects a table verify did not share
        # Tables of the process's reflections (connectors.engines) that verify read, by name:
        # every table set verified since `open`, the latest reflection of a name winning.
        self._shared: dict[str, sa.Table] = {}
        self._foreign_keys: ForeignKeys | None = None  # read once per open, or cached
        # The fingerprint of the database's foreign keys the latest `verify` read (engines).
        self._keys_stamp: str | None = None
        self._schema_read: SchemaRead | None = None  # how the latest `verify` knew the schema
        # The problems `verify_each` found per table specs, with the shared reflection.
        self._verified: dict[tuple[object, ...], list[list[Problem]]] | None = None

    def _table(self, name: str) -> sa.Table:
        found = self._shared.get(name)
        found = found if found is not None else self._own.tables.get(name)
        if found is not None:
            return found
        with self._wrap(f"cannot read the schema of table {name}"):
            try:
                table = sa.Table(name, self._own, autoload_with=self.engine)
            except sa.exc.NoSuchTableError:
                raise SchemaError(f"table {name} does not exist") from None
            note_inherited(self.engine, [table])
            return table

    def verify(self, tables: Sequence[Table]) -> list[Problem]:
        return [p for found in self.verify_each(tables) for p in found]

    def verify_each(
        self, tables: Sequence[Table], *, reuse_seconds: float = 0.0
    ) -> list[list[Problem]]:
        """See `Connector.verify_each`: one fingerprint query (and, when it changed, one
        reflection) for every table of `tables`, their dependents, bases and related tables;
        none when `reuse_seconds` lets it borrow a recent one (`connectors.engines`)."""
        names: list[str] = []
        pending: list[Table | Dependent] = list(tables)
        while pending:
            item = pending.pop()
            names.append(item.name if isinstance(item, Table) else item.table)
            pending.extend(item.dependents)
            if isinstance(item, Table):
                names += [b.table for b in item.bases] + [r.table for r in item.related]
        names = sorted(set(names))
        with self._wrap(f"cannot inspect the schema of {', '.join(names)}"):
            existing = self._reflect(names, reuse_seconds)
        verified, key = self._verified, _hashable(tables)
        # One lookup: another run's thread may clear them between two (VERIFIED_PER_SCHEMA).
        kept = verified.get(key) if verified is not None and key is not None else None
        if kept is not None:
            return [list(problems) for problems in kept]
        found: list[list[Problem]] = []
        for spec in tables:
            problems = verify_table(spec, existing, self._table, self.engine.dialect)
            problems.extend(verify_tenancy(spec, existing, self._table))
            problems.extend(sqlbasis.verify_spec(spec, existing, self._table, self.dialect))
            if spec.name in existing:
                problems.extend(inherited_key(spec, self._table(spec.name)))
            found.append(problems)
        # Kept with the shared reflection when it alone was read: the same specs against the
        # same reflection find the same problems (a new reflection, after drift, starts
        # empty). Not when a table outside it was reflected for this connector alone.
        if verified is not None and key is not None and not self._own.tables:
            if len(verified) >= VERIFIED_PER_SCHEMA:
                verified.clear()
            verified[key] = [list(problems) for problems in found]
        return found

    def _reflect(self, names: Sequence[str], reuse_seconds: float = 0.0) -> set[str]:
        """Reflect the tables `names` that exist; returns the names of existing tables (all
        of the database's without `engines`, those of `names` with). With `engines`, the
        process's reflection is used when the catalog says the tables are unchanged (or,
        within `reuse_seconds`, said so to another connector: `schema_read().borrowed`)."""
        if self._engines is not None:
            surveyed = self._engines.survey(
                self.engine_key, self.engine, names, reuse_seconds=reuse_seconds
            )
            reflected = surveyed.reflected
            self._schema_read = SchemaRead(reflected.stamp, surveyed.borrowed)
            self._verified = reflected.metadata.info.setdefault("retention_worker.verified", {})
            if surveyed.keys != self._keys_stamp:  # keys read before it are not trusted
                self._keys_stamp, self._foreign_keys = surveyed.keys, None
            # Merged, not replaced: a pair verifies its tables set by set, and every set it
            # verified must stay served from the cache (else each rule reflected its table
            # again). A name verified as gone is forgotten.
            self._own = sa.MetaData()
            for name in names:
                self._shared.pop(name, None)
            self._shared.update((n, reflected.metadata.tables[n]) for n in reflected.existing)
            return set(reflected.existing)
        self._schema_read = self._verified = None
        existing = set(sa.inspect(self.engine).get_table_names())
        wanted = sorted({n for n in names if n in existing} - set(self._metadata.tables))
        if wanted:  # one bulk reflection instead of several queries per table
            self._metadata.reflect(bind=self.engine, only=wanted)
            note_inherited(self.engine, [self._metadata.tables[n] for n in wanted])
        return existing

    def foreign_keys_to(self, table: str) -> list[ForeignKeyRef]:
        """See `Connector.foreign_keys_to`; the whole database's foreign keys are read once
        per `open` (connectors.sqlschema), or with `engines` taken from the process's cache
        when `verify` found their fingerprint unchanged (connectors.engines)."""
        if self._foreign_keys is None:
            with self._wrap("cannot read the foreign keys of the database"):
                engine = self.engine
                if self._engines is None or self._keys_stamp is None:
                    self._foreign_keys = all_foreign_keys(engine)
                else:
                    self._foreign_keys = self._engines.foreign_keys(
                        self.engine_key, engine, self._keys_stamp, lambda: all_foreign_keys(engine)
                    )
        return foreign_keys_to(self._foreign_keys, table)

    def every_foreign_key_to(self, table: str) -> list[ForeignKeyRef]:
        """Every foreign key pointing at `table`, its own included (connectors.sqlschema):
        a batch never reaches a row of its table outside it (sqlrefuse.refuse_reach_back)."""
        self.foreign_keys_to(table)  # reads the database's keys once per open
        return every_foreign_key_to(self._foreign_keys or {}, table)

    def outside_keys_to(self, table: str) -> list[ForeignKeyRef]:
        """See `Connector.outside_keys_to` (connectors/sqloutside.py reads them, with the
        database's other keys and cached with them)."""
        self.foreign_keys_to(table)  # reads the database's keys once per open
        return outside_keys_to(self._foreign_keys or {}, table)

    def table_schema(self, table: str) -> TableSchema:
        spec = self._table(table)
        with self._wrap(f"cannot read the constraints of table {table}"):
            return table_schema(self.engine, spec)

    def schema_read(self) -> SchemaRead | None:
        """See `Connector.schema_read`."""
        return self._schema_read

    def _own_schema(self) -> None:
        """Refuse a change while the latest `verify` only borrowed another run's fingerprint
        of the catalog: rows change only after this run read it itself (worker/drift.py).
        Raises ConnectorError (a bug of the caller, never expected)."""
        if self._schema_read is not None and self._schema_read.borrowed:
            raise ConnectorError(
                "refused to change rows: this run has not checked the schema itself yet "
                "(its check borrowed another run's; a bug in the worker, please report it)"
            )


def _hashable(tables: Sequence[Table]) -> tuple[object, ...] | None:
    """`tables` as a cache key; None when a spec holds an unhashable value (a condition's
    list). The key holds the type of every condition value too: `1`, `1.0` and `True` are
    equal in Python, but a check accepts only one of them for a column (`sqlbasis.typed`)."""
    kinds = tuple(
        tuple(
            tuple(map(type, c.value)) if isinstance(c.value, tuple) else type(c.value)
            for c in spec.conditions
        )
        for spec in tables
    )
    key = (tuple(tables), kinds)
    try:
        hash(key)
    except TypeError:
        return None
    return key
