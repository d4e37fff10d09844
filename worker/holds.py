"""The legal-hold ledger: what must not be changed while a matter is open (Annex C's data-breach
dossier, a dispute, an investigation).

A hold covers one of four scopes, narrowest last:

- a customer (every product of it);
- a customer × product;
- a rule of a customer × product;
- one record: a table of a customer × product and the keyed hash of the record's key
  (worker/keys.py). The operator gives the key; the ledger stores only its hash.

Each hold names a matter id, a reason, who placed it and when. Several holds may cover one
record; a record is free only when every hold covering it is released. Releasing a hold keeps
its row with who released it, when and why: the ledger is history. Every placement and release
is also an audit event (the CLI publishes it). A hold beats everything else: floors, settings,
approvals.

Reasons are free text: write the matter, never a data subject's name (the reason is stored in
the state database; the audit trail keeps only its SHA-256).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from worker.errors import RetentionError
from worker.state import StateStore
from worker.state.models import holds
from worker.state.store import utc


class HoldError(RetentionError):
    """The hold cannot be placed or released as asked."""


@dataclass(frozen=True)
class Hold:
    """One row of the ledger. `scope` is customer, product, rule or record."""

    hold_id: str
    customer: str
    product: str | None
    rule: str | None
    table: str | None
    key_hash: str | None
    matter: str
    reason: str
    placed_by: str
    placed_at: dt.datetime
    released_at: dt.datetime | None = None
    released_by: str | None = None
    release_reason: str | None = None

    @property
    def scope(self) -> str:
        if self.key_hash is not None:
            return "record"
        if self.rule is not None:
            return "rule"
        if self.product is not None:
            return "product"
        return "customer"

    @property
    def active(self) -> bool:
        return self.released_at is None


@dataclass(frozen=True)
class ActiveHolds:
    """The holds in force on one customer × product, as a run reads them."""

    pair: tuple[Hold, ...] = ()  # on the customer, or on the customer × product
    rules: dict[str, tuple[Hold, ...]] = field(default_factory=dict)
    records: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    def blocking(self, rule: str) -> tuple[Hold, ...]:
        """Holds that stop a whole rule: on the customer, the pair or that rule."""
        return self.pair + self.rules.get(rule, ())

    def held(self, table: str, hashes: Iterable[str]) -> set[str]:
        """Which of `hashes` (record-key hashes of `table`) a record hold covers."""
        on_table = self.records.get(table)
        if not on_table:
            return set()
        return {h for h in hashes if h in on_table}

    def count_records(self, table: str) -> int:
        return len(self.records.get(table, {}))


def _from_row(row: Any) -> Hold:
    return Hold(
        hold_id=row.hold_id,
        customer=row.customer,
        product=row.product,
        rule=row.rule,
        table=row.table_name,
        key_hash=row.key_hash,
        matter=row.matter,
        reason=row.reason,
        placed_by=row.placed_by,
        placed_at=utc(row.placed_at),
        released_at=utc(row.released_at) if row.released_at else None,
        released_by=row.released_by,
        release_reason=row.release_reason,
    )


def _required(**texts: str | None) -> None:
    for name, value in texts.items():
        if not value or not value.strip():
            raise HoldError(f"--{name.replace('_', '-')} is required and cannot be empty")


class HoldLedger:
    """Reads and writes the `holds` table of the state database."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def place(
        self,
        *,
        customer: str,
        product: str | None,
        rule: str | None,
        table: str | None,
        key_hash: str | None,
        matter: str,
        reason: str,
        by: str,
        at: dt.datetime,
    ) -> Hold:
        """Record a new hold; HoldError when the scope is incomplete or a text is empty."""
        _required(customer=customer, matter=matter, reason=reason, by=by)
        if rule is not None and product is None:
            raise HoldError("a hold on a rule needs --product as well")
        if (table is None) != (key_hash is None):
            raise HoldError("a hold on a record needs both --table and --key")
        if table is not None and product is None:
            raise HoldError("a hold on a record needs --product as well")
        if rule is not None and table is not None:
            raise HoldError("hold a rule or a record, not both")
        hold = Hold(
            hold_id=f"H-{secrets.token_hex(4)}",
            customer=customer,
            product=product,
            rule=rule,
            table=table,
            key_hash=key_hash,
            matter=matter.strip(),
            reason=reason.strip(),
            placed_by=by.strip(),
            placed_at=at.astimezone(dt.UTC),
        )

        def write(conn: Connection) -> None:
            exists = conn.execute(sa.select(holds.c.hold_id).where(holds.c.hold_id == hold.hold_id))
            if exists.first() is None:  # a retried write after a lost reply
                conn.execute(
                    holds.insert().values(
                        hold_id=hold.hold_id,
                        customer=hold.customer,
                        product=hold.product,
                        rule=hold.rule,
                        table_name=hold.table,
                        key_hash=hold.key_hash,
                        matter=hold.matter,
                        reason=hold.reason,
                        placed_by=hold.placed_by,
                        placed_at=hold.placed_at,
                    )
                )

        self._store.write(f"placing hold {hold.hold_id}", write)
        return hold

    def release(self, hold_id: str, *, by: str, reason: str, at: dt.datetime) -> Hold:
        """Release an active hold; HoldError when it is unknown or already released."""
        _required(by=by, reason=reason)
        attempts = 0

        def write(conn: Connection) -> Hold:
            nonlocal attempts
            attempts += 1
            row = conn.execute(sa.select(holds).where(holds.c.hold_id == hold_id)).first()
            if row is None:
                raise HoldError(f"no hold {hold_id!r}; `retention-worker holds list` shows them")
            if row.released_at is not None:
                retried = attempts > 1 and row.released_by == by.strip()
                if retried and row.release_reason == reason.strip():
                    return _from_row(row)  # this call's own first attempt committed
                raise HoldError(
                    f"hold {hold_id} was already released on {utc(row.released_at):%Y-%m-%d} "
                    f"by {row.released_by}"
                )
            conn.execute(
                holds.update()
                .where(holds.c.hold_id == hold_id)
                .values(
                    released_at=at.astimezone(dt.UTC),
                    released_by=by.strip(),
                    release_reason=reason.strip(),
                )
            )
            released = conn.execute(sa.select(holds).where(holds.c.hold_id == hold_id)).one()
            return _from_row(released)

        return self._store.write(f"releasing hold {hold_id}", write)

    def list(self, *, include_released: bool = False, customer: str | None = None) -> list[Hold]:
        """Holds, oldest first; only the active ones unless `include_released`."""
        query = sa.select(holds).order_by(holds.c.placed_at, holds.c.hold_id)
        if not include_released:
            query = query.where(holds.c.released_at.is_(None))
        if customer is not None:
            query = query.where(holds.c.customer == customer)

        def read(conn: Connection) -> list[Hold]:
            return [_from_row(r) for r in conn.execute(query)]

        return self._store.read("listing holds", read)

    def active_for(self, customer: str, product: str) -> ActiveHolds:
        """The holds in force on one customer × product, read now (never kept between
        calls: a hold placed before a run starts binds that run)."""
        pair = {"customer": customer, "product": product}

        def read(conn: Connection) -> list[Hold]:
            return [_from_row(r) for r in conn.execute(ACTIVE_FOR_PAIR, pair)]

        return _group(self._store.read(f"reading the holds on {customer} × {product}", read))


# Built once: every run of a pair reads it (bound parameters `customer` and `product`).
ACTIVE_FOR_PAIR = sa.select(holds).where(
    holds.c.customer == sa.bindparam("customer"),
    holds.c.released_at.is_(None),
    sa.or_(holds.c.product.is_(None), holds.c.product == sa.bindparam("product")),
)


def _group(found: Sequence[Hold]) -> ActiveHolds:
    pair: list[Hold] = []
    rules: dict[str, list[Hold]] = {}
    records: dict[str, dict[str, list[str]]] = {}
    for hold in found:
        if hold.scope in ("customer", "product"):
            pair.append(hold)
        elif hold.scope == "rule" and hold.rule is not None:
            rules.setdefault(hold.rule, []).append(hold)
        elif hold.table is not None and hold.key_hash is not None:
            records.setdefault(hold.table, {}).setdefault(hold.key_hash, []).append(hold.hold_id)
    return ActiveHolds(
        pair=tuple(pair),
        rules={k: tuple(v) for k, v in rules.items()},
        records={t: {h: tuple(ids) for h, ids in m.items()} for t, m in records.items()},
    )
