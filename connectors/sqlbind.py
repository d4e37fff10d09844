"""One statement for many customers: the values that differ per customer as named parameters.

The grouped backlog count (`connectors.sqlcount`) of the rules of one product mapping has
the same shape for every customer of a shared database: only the tenant value and the
cutoffs differ. Building its SQLAlchemy expressions anew for every customer cost more than
running it. So the statement is built once per *shape* (`shape`: the targets with their
tenant and cutoffs left out, the dialect, and the very reflected tables it reads), with
each value that differs per customer as a named bind parameter (`Slots`), and every later
customer of that shape gets the cached statement with its own values (`Slots.params`),
derived from its targets by the same functions that built the statement.

The SQL is the one the connector builds without the cache, parameter names aside: the same
clauses, the same parameter types (a comparison's parameter gets the type SQLAlchemy would
give it, `compare`), and every value checked as before (a tenant value that does not convert
exactly to its column raises `TenantValueError` for that customer, from `Slots.params`).

What makes a stale statement impossible: the statements are kept with the reflection they
were built on (in its MetaData's `info`, `connectors.sqlread.grouped_cache`) and their key
holds the reflected `sa.Table` objects they read (compared by identity); a schema that
drifted is reflected into new ones (`connectors.engines`), so it never matches a statement
built on the old ones; a reloaded configuration that maps anything differently gives
targets of another shape. A target with held keys or with a plan's earlier deletes
(`Target.held`, `Target.gone`) is not cached. The cache is bounded (least recently used go
first) and thread-safe.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import Any, Generic, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.types import TypeEngine

from connectors.base import Target

Derive = Callable[[Any], Any]
"""From one customer's input (its tenant value, or an object with `cutoff_date` and
`cutoff_instant`) to the value a parameter holds."""

Bind = Callable[[Derive, TypeEngine[Any]], ColumnElement[Any]]
"""`bind(derive, type_)`: a bind parameter of `type_` that holds `derive(input)` for each
customer the statement runs for."""

Source = Callable[[Target], Any]
"""Where a customer's input lies in its target: its tenant, its own cutoff or one of `also`."""

PREFIX = "rw_value_"
"""The names of the per-customer parameters: PREFIX0, PREFIX1, …"""

_NO_DATE = dt.date(1, 1, 1)
_NO_INSTANT = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


def compare(
    left: ColumnElement[Any],
    op: OperatorType,
    value: Any,
    bind: Bind | None,
    derive: Derive,
) -> ColumnElement[bool]:
    """`op(left, value)` (a comparison of `sqlalchemy.sql.operators`) as SQLAlchemy builds
    it; with `bind`, the value as a per-customer parameter (`derive(input)`) of the type
    SQLAlchemy gives a plain value there."""
    if bind is None:
        return cast(ColumnElement[bool], op(left, value))
    param = bind(derive, left.type.coerce_compared_value(op, value))
    return cast(ColumnElement[bool], op(left, param))


class Values:
    """The per-customer inputs of one target of a statement being built (see `Slots.part`)."""

    def __init__(self, slots: Slots, part: int, target: Target) -> None:
        self._slots, self._part, self._target = slots, part, target

    def tenant(self) -> Bind:
        """Binds values derived from the target's tenant."""
        return self._slots.binder(self._part, self._target, _tenant_of)

    def cutoff(self, also: int | None = None) -> Bind:
        """Binds values derived from the target's cutoff, or from that of `also[also]`."""
        if also is None:
            return self._slots.binder(self._part, self._target, _itself)
        return self._slots.binder(self._part, self._target, lambda t: t.also[also])


def _tenant_of(target: Target) -> Any:
    return target.tenant


def _itself(target: Target) -> Any:
    return target


class Slots:
    """The per-customer parameters of one statement: name, part (which target), where the
    input lies and how the value derives from it."""

    def __init__(self) -> None:
        self._slots: list[tuple[str, int, Source, Derive]] = []

    def part(self, index: int, target: Target) -> Values:
        """The inputs of `target`, the statement's `index`th target, while building it."""
        return Values(self, index, target)

    def binder(self, part: int, target: Target, source: Source) -> Bind:
        """A `Bind` that adds a parameter of `source` of part `part` for each value bound;
        the parameter holds `target`'s value (the customer the statement is built for)."""

        def bind(derive: Derive, type_: TypeEngine[Any]) -> ColumnElement[Any]:
            name = f"{PREFIX}{len(self._slots)}"
            self._slots.append((name, part, source, derive))
            return sa.bindparam(name, derive(source(target)), type_=type_)

        return bind

    def names(self) -> list[str]:
        """The parameters' names, in the order they were bound."""
        return [name for name, _, _, _ in self._slots]

    def params(self, targets: Sequence[Target]) -> dict[str, Any]:
        """The parameters for `targets` (a statement of the same shape, in the same order).
        Raises what deriving a value raises (`TenantValueError`, …)."""
        return {name: derive(source(targets[part])) for name, part, source, derive in self._slots}


def shape(target: Target) -> Hashable | None:
    """The target without its tenant value and cutoffs (whether it has a tenant stays);
    None when it cannot share a statement (held keys, a plan's earlier deletes, a value
    that cannot be hashed)."""
    if target.held or target.gone:
        return None
    also = tuple(replace(b, cutoff_date=_NO_DATE, cutoff_instant=_NO_INSTANT) for b in target.also)
    found = replace(
        target,
        tenant=target.tenant is not None,
        cutoff_date=_NO_DATE,
        cutoff_instant=_NO_INSTANT,
        also=also,
    )
    try:
        hash(found)
    except TypeError:
        return None
    return found


T = TypeVar("T")


class Cache(Generic[T]):
    """At most `limit` entries by key, the least recently used dropped first; thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> T | None:
        """The entry of `key`, or None."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Hashable, value: T) -> None:
        """Keep `value` for `key`, dropping the least recently used beyond `limit`."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
