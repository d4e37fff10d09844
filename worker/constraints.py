"""The live constraints a mapping's rules run into (for `validate`): masks against the columns
they write, deletes against the foreign keys that point at the rows they remove.

- **Masks** (`connectors.maskfit`): each `with` entry of an anonymise stage against its
  column's type, width, NOT NULL, unique keys and foreign keys, those of tables outside the
  product's schema that reference the column included (their ON UPDATE follows or refuses
  the masked value alike). A mask that cannot fit is a problem at that `with` entry, naming
  table.column and a mask that fits. A mask on a column an acting ON UPDATE key references
  is a warning that says what a run does: it counts the rows the key changes, or leaves the
  row whose change would reach another tenant's row or a row outside the product's schema
  (connectors/sqlupdatereach.py).
- **Foreign keys into deleted rows**: a delete stage removes the subject's rows and its
  dependents' (an unlink stage the subject's only). A foreign key of another table pointing at
  one of those tables, that the mapping does not delete first (not a dependent there, with
  those columns), either refuses the delete (ON DELETE RESTRICT / NO ACTION: a problem at the
  stage's `action`, with the fix) or changes rows the mapping does not name (CASCADE, SET NULL,
  SET DEFAULT: a warning; the run counts those rows). SET NULL (or SET DEFAULT without a
  DEFAULT) on a NOT NULL column of the foreign key refuses the delete too: a problem, like
  RESTRICT. A table without a key (`key: []`) takes no acting key at all, its own included:
  a problem (its batches could not count what the key does).
- **Foreign keys from outside the product's schema** (another PostgreSQL schema, another
  MariaDB database: `Connector.outside_keys_to`) whose ON DELETE acts: a warning; the run
  leaves the rows such a key references (connectors/sqloutside.py). Under a subject
  without a key, a problem, as for any acting key.

Each finding comes with its path in the product mapping; `worker.checks` adds the file and
line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from connectors.base import (
    Connector,
    ForeignKeyRef,
    RefAction,
    SchemaError,
    TableSchema,
    keyless_reached,
)
from connectors.maskfit import check_masks
from worker.config import Action, Dependent, Masking, ProductMapping, Rule, Stage
from worker.config.language import RelatedAction
from worker.targets import column_mask

Path_ = tuple[str | int, ...]


@dataclass
class Findings:
    """Problems (exit 2) at their path in the product mapping, and warnings."""

    problems: list[tuple[Path_, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def stage_path(index: int, rule: Rule, stage: int) -> Path_:
    """Where a stage's `action` and `with` are written: on the rule itself (a single-stage
    rule) or in its `stages` list."""
    return ("rules", index) if rule.action is not None else ("rules", index, "stages", stage)


def check_constraints(connector: Connector, mapping: ProductMapping) -> Findings:
    """Masks and deletes of every rule of `mapping` against the live schema.

    A table that does not exist is skipped (the schema comparison reports it). Raises
    ConnectorError when the database cannot be read.
    """
    found = Findings()
    schemas: dict[str, TableSchema | None] = {}
    for index, rule in enumerate(mapping.rules):
        subject = mapping.subjects.get(rule.subject)
        if subject is None:
            continue
        for number, stage in enumerate(rule.stages):
            path = stage_path(index, rule, number)
            label = f"{'.'.join(str(p) for p in path)} ({rule.stage_id(stage)})"
            if stage.action is Action.ANONYMISE:
                if subject.table not in schemas:
                    schemas[subject.table] = _schema(connector, subject.table)
                schema = schemas[subject.table]
                if schema is not None:
                    _masks(connector, schema, stage.with_, path, label, found)
            else:
                deps = subject.dependents if stage.action is Action.DELETE else ()
                keyless = not subject.key
                _deletes(
                    connector, mapping, subject.table, deps, stage, path, label, found, keyless
                )
                if keyless:  # batches by locator: what a key reaches goes uncounted
                    table = subject.table
                    refs = [
                        *connector.every_foreign_key_to(table),
                        *connector.outside_keys_to(table),
                    ]
                    for ref in refs:
                        if not ref.on_delete.blocks:
                            message = keyless_reached(table, ref)
                            found.problems.append(((*path, "action"), message))
        for number, related in enumerate(rule.related):
            if related.action is not RelatedAction.ANONYMISE or related.table == subject.table:
                continue
            if related.table not in schemas:
                schemas[related.table] = _schema(connector, related.table)
            schema = schemas[related.table]
            if schema is not None:
                path = ("rules", index, "related", number)
                label = f"{'.'.join(str(p) for p in path)} ({rule.id})"
                _masks(connector, schema, related.with_, path, label, found)
    return found


def _schema(connector: Connector, table: str) -> TableSchema | None:
    try:
        return connector.table_schema(table)
    except SchemaError:
        return None  # a missing table: reported by the schema comparison


def _masks(
    connector: Connector,
    schema: TableSchema,
    with_: Mapping[str, Masking],
    path: Path_,
    label: str,
    found: Findings,
) -> None:
    masks = [column_mask(column, masking) for column, masking in with_.items()]
    # A key from outside the product's schema, or of the table to itself, follows (ON UPDATE
    # CASCADE) or refuses (RESTRICT) a masked value like one from another table.
    keys = [*connector.every_foreign_key_to(schema.name), *connector.outside_keys_to(schema.name)]
    for fit in check_masks(schema, masks, keys):
        if fit.fatal:
            found.problems.append(((*path, "with", fit.column), fit.message))
        else:
            found.warnings.append(f"{fit.message} ({label}.with.{fit.column})")


def _deletes(
    connector: Connector,
    mapping: ProductMapping,
    table: str,
    dependents: Sequence[Dependent],
    stage: Stage,
    path: Path_,
    label: str,
    found: Findings,
    keyless: bool = False,
) -> None:
    mapped = set(_mapped_tables(mapping))
    for parent, children in _tree(table, dependents):
        for ref in connector.outside_keys_to(parent):
            if not ref.on_delete.blocks and not keyless:
                found.warnings.append(
                    f"deleting {parent} rows {_effect(ref)} ({_fk(ref)}); {ref.qualified} is "
                    "outside the product's schema, which the run neither counts nor checks: "
                    f"a {parent} row such a row references is left (blocked, as under "
                    f"RESTRICT) until none does ({label})"
                )
        for ref in connector.foreign_keys_to(parent):
            if _covered(ref, children):
                continue
            where = (
                f"{ref.table} is mapped, but this rule does not delete it with {parent}"
                if ref.table in mapped
                else f"{ref.table} is not in the mapping"
            )
            if ref.on_delete.blocks:
                found.problems.append(((*path, "action"), _blocked(ref, stage, where)))
            elif (refused := _refused_reset(connector, ref)) is not None:
                found.problems.append(((*path, "action"), _blocked(ref, stage, where, refused)))
            elif keyless:
                continue  # a problem (check_constraints): the run could not count them
            else:
                found.warnings.append(
                    f"deleting {parent} rows {_effect(ref)} ({_fk(ref)}); {where}: the run "
                    f"counts those rows in the audit ({label})"
                )


def _refused_reset(connector: Connector, ref: ForeignKeyRef) -> str | None:
    """Why the database refuses what ON DELETE SET NULL / SET DEFAULT does to the
    referencing rows: a NOT NULL column of the key (without a DEFAULT, for SET DEFAULT) takes
    NULL. None when it does not (or for another action)."""
    if ref.on_delete not in (RefAction.SET_NULL, RefAction.SET_DEFAULT):
        return None
    schema = _schema(connector, ref.table)
    if schema is None:
        return None
    for name in ref.columns:
        column = schema.columns.get(name)
        if column is None or column.nullable:
            continue
        if ref.on_delete is RefAction.SET_DEFAULT and column.has_default:
            continue
        how = "to NULL" if ref.on_delete is RefAction.SET_NULL else "to its default, NULL,"
        return (
            f"it sets {ref.table}.{name} {how} which this NOT NULL column refuses "
            f"({column.type_name} NOT NULL)"
        )
    return None


def _blocked(ref: ForeignKeyRef, stage: Stage, where: str, refused: str | None = None) -> str:
    parent = ref.referred_table
    pairs = ", ".join(f"{own}: {theirs}" for own, theirs in ref.pairs)
    dependent = f"{{table: {ref.table}, references: {{{pairs}}}}}"
    if stage.action is Action.UNLINK:
        fix = (
            f"unlink removes {parent} rows only: use `action: delete` with {dependent} among "
            f"the dependents of {parent}, or anonymise instead of deleting"
        )
    else:
        fix = (
            f"map {ref.table} as a dependent of {parent} ({dependent}) so that its rows are "
            "deleted first, or anonymise instead of deleting"
        )
    if refused is not None:
        columns = ", ".join(f"{ref.table}.{c}" for c in ref.columns)
        fix += f", or make {columns} nullable"
        return (
            f"deleting {parent} rows is refused through the foreign key {_fk(ref)}: {refused}; "
            f"{where}, so every {parent} row that a row of {ref.table} still references would "
            f"fail its batch; {fix}"
        )
    return (
        f"deleting {parent} rows is refused by the foreign key {_fk(ref)}: {where}, so every "
        f"{parent} row that a row of {ref.table} still references would fail its batch; {fix}"
    )


def _effect(ref: ForeignKeyRef) -> str:
    columns = ", ".join(f"{ref.qualified}.{c}" for c in ref.columns)
    if ref.on_delete is RefAction.CASCADE:
        return f"also deletes the {ref.qualified} rows that reference them"
    if ref.on_delete is RefAction.SET_NULL:
        return f"also sets {columns} to NULL in the rows that reference them"
    return f"also sets {columns} to its default in the rows that reference them"


def _fk(ref: ForeignKeyRef) -> str:
    named = f"{ref.name}, " if ref.name else ""
    return (
        f"{named}{ref.qualified}({', '.join(ref.columns)}) → {ref.referred_table}"
        f"({', '.join(ref.referred_columns)}) ON DELETE {ref.on_delete}"
    )


def _covered(ref: ForeignKeyRef, children: Sequence[Dependent]) -> bool:
    """True when a dependent deletes the referencing rows first: the same table, and
    references that name the foreign key's columns (or a part of them)."""
    pairs = set(ref.pairs)
    for dep in children:
        if dep.table != ref.table:
            continue
        mine = set(dep.references.items())
        if mine <= pairs or pairs <= mine:
            return True
    return False


def _tree(table: str, dependents: Sequence[Dependent]) -> Iterator[tuple[str, Sequence[Dependent]]]:
    """Each table a delete removes rows of, with the dependents deleted before it."""
    yield table, dependents
    for dep in dependents:
        yield from _tree(dep.table, dep.dependents)


def _mapped_tables(mapping: ProductMapping) -> Iterator[str]:
    """Every table the mapping names: subjects and their dependents at any depth."""
    for subject in mapping.subjects.values():
        yield from (table for table, _ in _tree(subject.table, subject.dependents))
