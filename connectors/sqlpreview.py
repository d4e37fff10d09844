"""What `plan` counts in the SQL connector: what a rule's run would change (`preview`), and
the eligible rows it would block (`foresee`, connectors/sqlforesee.py). `SqlPreviews` sits
between `connectors.sqlread.SqlReads` (the selection predicates it counts over) and
`connectors.sql.SqlConnector`. Nothing is changed.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from connectors import sqlforesee, sqlreach
from connectors.base import Change, Foresight, Target
from connectors.sqlread import SqlReads
from connectors.sqlupdatereach import UpdateKeys


class SqlPreviews(SqlReads):
    """`preview` and `foresee` over the reads of `SqlReads` (see there for what subclasses
    supply)."""

    def preview(self, target: Target, change: Change) -> dict[str, int]:
        table = self._table(target.table.name)
        self.foreign_keys_to(table.name)
        return self._preview(table, target, change, self._expired(table, target))

    def foresee(self, target: Target, change: Change) -> Foresight:
        """See `Connector.foresee`: the eligible rows a run would block, as one batch of
        them all (at least those: connectors/sqlforesee.py), and `preview` of the rest.
        Raises `ConnectorError` (reduced driver errors), `SchemaError`."""
        table = self._table(target.table.name)
        self.foreign_keys_to(table.name)
        expired = self._expired(table, target)
        keys = UpdateKeys(
            self._table,
            self.every_foreign_key_to,
            self.outside_keys_to,
            lambda reached: self._tenant(reached, target),
        )
        ways = sqlforesee.blocking(keys, table, target, change, expired, self.dialect)
        what = f"cannot count the rows a {change} of {table.name} would leave"
        with self._wrap(what), self.engine.connect() as conn:
            found = sqlforesee.foresee(conn, self._table, table, expired, ways)
            if change is not Change.ANONYMISE:  # a blocked row stays: what it references too
                own = [r for r in self.every_foreign_key_to(table.name) if r.table == table.name]
                acting = [r for r in own if not r.on_delete.blocks]
                found = sqlforesee.spread(
                    conn, table, target.table.key, expired, found, acting, self.dialect
                )
        if found.where is None:
            return Foresight(self._preview(table, target, change, expired))
        # NULL (a NULL in a walked key's IN list) is not blocked: the row goes in a run.
        going = sa.and_(expired, sa.not_(sa.func.coalesce(found.where, sa.false())))
        changed = self._preview(table, target, change, going)
        return Foresight(changed, found.blocked, found.reasons)

    def _preview(
        self, table: sa.Table, target: Target, change: Change, expired: ColumnElement[bool]
    ) -> dict[str, int]:
        what = f"cannot count what a {change} of {table.name} reaches"
        with self._wrap(what), self.engine.connect() as conn:
            return sqlreach.preview(
                conn,
                self._table,
                self.foreign_keys_to,
                self._tenant,
                target,
                change,
                expired,
                self.every_foreign_key_to,
            )
