"""Which steps of a database's plan read a table, and through which indexes.

Each backend's own EXPLAIN output is read as data, never by matching its display text:

- PostgreSQL: `EXPLAIN (FORMAT JSON)`, a tree of nodes. A node that reads the table names it
  in "Relation Name": a `Seq Scan` reads it whole; an `Index Scan` or `Index Only Scan` goes
  through "Index Name" and searches it when it has an "Index Cond" (without one it reads the
  whole index, in its order); a `Bitmap Heap Scan` goes through the `Bitmap Index Scan`s
  below it (under `BitmapAnd`, any of them narrows; under `BitmapOr`, the rows of each).
- MariaDB/MySQL: the rows of `EXPLAIN`, one per table read, in the columns `table`, `type`
  and `key`. `type = ALL` reads the table whole, `index` reads the whole index `key`; `ref`,
  `range`, `eq_ref`, `const`, `ref_or_null` and the like search `key`; `index_merge` searches
  each index named in `key` (comma-separated; a union when `Extra` says so).
- SQLite: `EXPLAIN QUERY PLAN`, a tree of steps (`id`, `parent`, text): `SCAN t` reads the
  table whole, `SCAN t USING [COVERING] INDEX i` reads the whole index, `SEARCH t USING
  [COVERING] INDEX i (…)` searches it, `… USING INTEGER PRIMARY KEY` or `PRIMARY KEY` goes
  through the primary key, an `AUTOMATIC` index is one SQLite builds for the statement
  (no index of the schema). Older SQLite versions write `SCAN TABLE t`.

Only the steps of the statement's own reading count: those under a sub-select (PostgreSQL
"SubPlan"/"InitPlan", MariaDB `select_type` other than SIMPLE/PRIMARY, SQLite `… SUBQUERY`,
`CO-ROUTINE`, `MATERIALIZE`) read a related table's time basis or the like.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The name a step gives the primary key when the backend has no name of its own for it
#: (SQLite's `INTEGER PRIMARY KEY`, MariaDB's `PRIMARY`).
PRIMARY_KEY = "PRIMARY KEY"


@dataclass(frozen=True)
class Access:
    """One step of a plan that reads the table.

    `step` is the backend's name for it (`Index Scan`, `type=ref`, `SEARCH`); `whole_table`
    true when it reads every row; `indexes` the indexes it goes through (names as the plan
    gives them, `PRIMARY_KEY` for an unnamed primary key; empty for a table scan or an index
    the database builds for the statement alone); `searched` true when it looks values up in
    them rather than reading them whole; `union` true when the rows of several index
    searches are added together (each must then narrow the selection)."""

    step: str
    whole_table: bool
    indexes: tuple[str, ...] = ()
    searched: bool = False
    union: bool = False


def postgresql(plan: Any, table: str) -> list[Access]:
    """The steps of a PostgreSQL `EXPLAIN (FORMAT JSON)` result (the JSON text or its parsed
    list) that read `table` outside sub-selects. Raises ValueError on a document of another
    shape."""
    document = json.loads(plan) if isinstance(plan, str | bytes) else plan
    try:
        root = document[0]["Plan"]
    except (IndexError, KeyError, TypeError) as exc:
        raise ValueError("not a PostgreSQL JSON plan") from exc
    found: list[Access] = []
    pending: list[Mapping[str, Any]] = [root]
    while pending:
        node = pending.pop()
        if node.get("Relation Name") == table:
            found.append(_postgresql_step(node))
        pending.extend(
            child
            for child in node.get("Plans", ())
            if child.get("Parent Relationship") not in ("SubPlan", "InitPlan")
        )
    return found


def _postgresql_step(node: Mapping[str, Any]) -> Access:
    kind = str(node.get("Node Type", ""))
    if kind == "Seq Scan":
        return Access(kind, whole_table=True)
    if kind in ("Index Scan", "Index Only Scan"):
        return Access(kind, False, (str(node["Index Name"]),), searched="Index Cond" in node)
    if kind == "Bitmap Heap Scan":
        indexes: list[str] = []
        union = False
        pending = list(node.get("Plans", ()))
        while pending:
            child = pending.pop()
            union = union or child.get("Node Type") == "BitmapOr"
            if child.get("Node Type") == "Bitmap Index Scan":
                indexes.append(str(child["Index Name"]))
            pending.extend(child.get("Plans", ()))
        return Access(kind, False, tuple(sorted(indexes)), searched=bool(indexes), union=union)
    return Access(kind, whole_table=False)  # a TID, sample, foreign or custom scan


_MARIADB_WHOLE = {"ALL", "hash_ALL"}
_MARIADB_WHOLE_INDEX = {"index", "hash_index"}


def mariadb(rows: Iterable[Mapping[str, Any]], table: str) -> list[Access]:
    """The rows of a MariaDB/MySQL `EXPLAIN` (column name → value) that read `table` in the
    outer query."""
    found: list[Access] = []
    for row in rows:
        if row.get("table") != table or row.get("select_type") not in ("SIMPLE", "PRIMARY"):
            continue
        kind = str(row.get("type") or "")
        keys = tuple(
            PRIMARY_KEY if name == "PRIMARY" else name
            for name in str(row.get("key") or "").split(",")
            if name
        )
        step = f"type={kind}"
        if kind in _MARIADB_WHOLE:
            found.append(Access(step, whole_table=True))
        elif kind in _MARIADB_WHOLE_INDEX:
            found.append(Access(step, False, keys, searched=False))
        else:
            extra = str(row.get("Extra") or "").lower()
            found.append(Access(step, False, keys, searched=bool(keys), union="union(" in extra))
    return found


_SQLITE_STEP = re.compile(r"(SCAN|SEARCH) (?:TABLE )?(\S+)(?: AS \S+)?(?: USING (.*))?$")
_SQLITE_INDEX = re.compile(r"(AUTOMATIC )?(?:PARTIAL )?(?:COVERING )?INDEX (\S+)")
_SQLITE_PRIMARY = re.compile(r"(?:INTEGER )?PRIMARY KEY\b")
_SQLITE_SUBSELECT = re.compile(
    r"(?:CORRELATED )?(?:SCALAR |LIST )?SUBQUERY\b|CO-ROUTINE\b|MATERIALIZE\b"
)


def sqlite(steps: Sequence[tuple[int, int, str]], table: str) -> list[Access]:
    """The steps of a SQLite `EXPLAIN QUERY PLAN` ((id, parent id, text) each) that read
    `table` outside sub-selects."""
    by_id = {step_id: (parent, text) for step_id, parent, text in steps}
    found: list[Access] = []
    for step_id, parent, text in steps:
        match = _SQLITE_STEP.match(text)
        if match is None or match.group(2) != table or _in_subselect(by_id, parent, step_id):
            continue
        kind, using = match.group(1), match.group(3) or ""
        index = _SQLITE_INDEX.match(using)
        if index is not None and index.group(1):  # built for this statement alone
            names: tuple[str, ...] = ()
            kind = f"{kind} through an automatic index"
        elif index is not None:
            names = (index.group(2),)
        elif _SQLITE_PRIMARY.match(using):
            names = (PRIMARY_KEY,)
        else:
            names = ()
        searched = kind == "SEARCH" and bool(names)
        found.append(Access(kind, kind == "SCAN" and not using, names, searched))
    return found


def _in_subselect(by_id: Mapping[int, tuple[int, str]], parent: int, own: int) -> bool:
    seen = {own}
    while parent in by_id and parent not in seen:
        seen.add(parent)
        parent, text = by_id[parent]
        if _SQLITE_SUBSELECT.match(text):
            return True
    return False
