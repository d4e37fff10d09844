"""Links from a subject's table to the other tables a rule reaches, and when they would cross
tenants.

A rule reaches other tables through links, each `references` (own column → parent column):
the subject's `dependents` and theirs, at every depth (deleted with it), the `related` rows
of its rules (deleted or anonymised with it) and the tables of its related time bases
(`from:`, read for its date). A linked table that has the tenant column is filtered by it in
every statement. Two links would still reach another tenant's rows, and `verify` refuses
both, at the link's references, with the fix:

1. the parent's key holds the tenant column (`[organisation_id, id]`: ids repeat between
   tenants) and the references leave it out (`{child_id: id}`). Known offline for the
   subject, whose key is in the mapping; live for a dependent's dependents, whose parent's
   key is its table's primary key (`reference_problems`);
2. the linked table has no tenant column, so nothing filters it, and the references do not
   name one parent row: they cover no primary key, unique constraint or unique index of the
   parent (nor, for the subject, its mapped key). Rows of the linked table that point at
   another tenant's parent row with the same values would be reached. Live only
   (`unscoped_problems`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from connectors.base import Dependent, Problem, Table

KeyOf = Callable[[str], Sequence[str] | None]


@dataclass(frozen=True)
class Link:
    """One link: rows of `table` whose `references` (own column → `parent` column) point at
    rows of `parent`. `part` says where the mapping writes it: "references" (a dependent),
    "related" (a rule's related rows) or "from" (a related time basis). `nested`: the parent
    is a dependent, not the subject."""

    parent: str
    table: str
    references: tuple[tuple[str, str], ...]
    part: str
    nested: bool = False

    @property
    def referenced(self) -> list[str]:
        return [theirs for _, theirs in self.references]

    def written(self) -> str:
        return "{" + ", ".join(f"{own}: {theirs}" for own, theirs in self.references) + "}"


def links(spec: Table) -> Iterator[Link]:
    """Every link of `spec`: dependents at every depth (parents first), related rows, the
    tables of related time bases."""

    def walk(parent: str, dependents: Sequence[Dependent], nested: bool) -> Iterator[Link]:
        for dep in dependents:
            yield Link(parent, dep.table, dep.references, "references", nested)
            yield from walk(dep.table, dep.dependents, True)

    yield from walk(spec.name, spec.dependents, False)
    for rel in dict.fromkeys(spec.related):
        yield Link(spec.name, rel.table, rel.references, "related")
    for basis in dict.fromkeys(spec.bases):
        yield Link(spec.name, basis.table, basis.references, "from")


def linked_tables(spec: Table) -> list[str]:
    """The tables besides `spec`'s own that a rule of it reads or changes, each once."""
    found = [link.table for link in links(spec)]
    return [name for name in dict.fromkeys(found) if name != spec.name]


_VERB = {"references": "deleting", "related": "changing", "from": "reading the dates of"}


def reference_problems(spec: Table, key_of: KeyOf = lambda _: None) -> list[Problem]:
    """Links whose references leave out the tenant column that their parent's key holds
    (rule 1 above): fatal problems, with the fix. `key_of(table)` gives a dependent's key
    (its primary key), or None when unknown (offline); the subject's key is the mapping's."""
    tenant = spec.tenant_column
    if tenant is None:
        return []
    problems: list[Problem] = []
    for link in links(spec):
        key = key_of(link.parent) if link.nested else spec.key
        if key is None or tenant not in key or tenant in link.referenced:
            continue
        problems.append(
            Problem(
                link.table,
                None,
                f"the key of {link.parent} is [{', '.join(key)}], but the references of "
                f"{link.table} ({link.written()}) leave out the tenant column {tenant}: "
                f"{_VERB[link.part]} one tenant's {link.parent} rows would reach other "
                f"tenants' {link.table} rows with the same {', '.join(link.referenced)}; add "
                f"`{tenant}: {tenant}` to its references (naming {link.table}'s own tenant "
                f"column; if {link.table} has none, it cannot tell the tenants' rows apart: "
                "add one)",
                part=link.part,
            )
        )
    return problems


def unscoped_problems(
    spec: Table,
    has_tenant: Callable[[str], bool | None],
    unique_keys: Callable[[str], Sequence[Sequence[str]]],
) -> list[Problem]:
    """Links to a table without the tenant column whose references name no single parent row
    (rule 2 above). `has_tenant(table)`: whether the table has the tenant column (None:
    unknown, e.g. missing); `unique_keys(table)`: its primary key, unique constraints and
    unique indexes (the subject's mapped key counts too)."""
    tenant = spec.tenant_column
    if tenant is None:
        return []
    problems: list[Problem] = []
    for link in links(spec):
        if has_tenant(link.table) is not False:
            continue
        keys = [list(k) for k in unique_keys(link.parent) if k]
        if not link.nested and spec.key:
            keys.append(list(spec.key))
        if any(set(k) <= set(link.referenced) for k in keys):
            continue
        named = " or ".join(f"[{', '.join(k)}]" for k in keys) or "(none)"
        problems.append(
            Problem(
                link.table,
                None,
                f"{link.table} has no tenant column {tenant}, so only its references "
                f"({link.written()}) tie its rows to one tenant's {link.parent} rows, and "
                f"{', '.join(link.referenced)} does not name one {link.parent} row: "
                f"{_VERB[link.part]} one tenant's {link.parent} rows would reach {link.table} "
                f"rows of other tenants' {link.parent} rows with the same values; reference a "
                f"unique key of {link.parent} ({named}), or add the tenant column to "
                f"{link.table} and to these references",
                part=link.part,
            )
        )
    return problems
