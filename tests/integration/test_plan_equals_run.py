"""`plan` counts, per rule and table, exactly what `run --once` changes (issue 9, points 6 and
9): subject rows, nested dependents, related rows, and rows of tables outside the mapping that
the database's own foreign keys delete (ON DELETE CASCADE, also a cascade's cascade) or set to
NULL. The run's audit trail counts the same rows per table, and they are the rows that really
left or changed, by key; every other row, the other tenant's above all, is unchanged.

Both commands run in-process through the CLI at the same instant (`--at`), on SQLite,
PostgreSQL and MariaDB, over rows hypothesis draws on both sides of each cutoff and condition.

    child (delete rule, 24 months; tenant organisation_id; status; left_on)
      ├─ photo ─ photo_tag        dependents (nested; real foreign keys)
      ├─ note ─ note_reply        unmapped: ON DELETE CASCADE to child, and to note
      └─ seat                     unmapped: ON DELETE SET NULL to child
    child_file (anonymise rule, 6 months; same columns)
      ├─ medical ─ medical_file   related rows deleted; medical_file is unmapped,
      │                           ON DELETE CASCADE to medical
      └─ contact                  related rows anonymised (some already are)

Only rows with status `Left` are eligible (a row condition); tenant 2 is another customer's.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import dbs
from tests.integration.own_config import validate, write_config
from tests.support import PEPPER
from worker.cli import main
from worker.state import StateStore

ENV = "KIDS_DATABASE_URL"
# The instant both commands evaluate at; in the customers' zone the cutoffs are then
# 2025-12-15 (anonymise, 6 months) and 2024-06-15 (delete, 24 months).
AT = "2026-06-15T12:00+02:00"
ANON_CUTOFF, DELETE_CUTOFF = dt.date(2025, 12, 15), dt.date(2024, 6, 15)
DAY = dt.timedelta(days=1)
LEFT_ON = [
    None,
    dt.date(2026, 3, 1),  # recent: kept
    ANON_CUTOFF,  # on the anonymise cutoff: kept
    ANON_CUTOFF - DAY,  # one day past it: the file anonymised
    DELETE_CUTOFF,  # on the delete cutoff: the file anonymised, the child kept
    DELETE_CUTOFF - DAY,  # one day past it: the file anonymised, the child deleted
    dt.date(2019, 1, 1),
]
MASKED_PHONE = "removed"
ANONYMISE, DELETE = "kids.file.anonymise", "kids.child.delete"

PRODUCT = f"""\
product: kids
database: {{url_env: {ENV}}}
tenancy: {{column: organisation_id}}
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {{name: name}}
    dates: {{left: left_on}}
    where: [{{column: status, equals: Left}}]
    dependents:
      - table: photo
        references: {{child_id: id}}
        columns: {{path: photo}}
        dependents:
          - {{table: photo_tag, references: {{photo_id: id}}}}
  child_file:
    kind: child
    table: child_file
    key: [id]
    columns: {{name: name}}
    dates: {{left: left_on}}
    where: [{{column: status, equals: Left}}]
rules:
  - id: {ANONYMISE}
    subject: child_file
    after: {{date: left, period: 6m}}
    action: anonymise
    with: {{name: keyed_hash}}
    related:
      - {{table: medical, references: {{file_id: id}}, action: delete}}
      - table: contact
        references: {{file_id: id}}
        action: anonymise
        columns: {{phone: name}}
        with: {{phone: {{fixed: {MASKED_PHONE}}}}}
  - id: {DELETE}
    subject: child
    after: {{date: left, period: 24m}}
    action: delete
"""
CUSTOMERS = {
    "kdv-a": "timezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 1\n",
    "kdv-b": "timezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 2\n",
}

MD = sa.MetaData()


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)


def _tenant() -> sa.Column[int]:
    return sa.Column("organisation_id", sa.Integer, nullable=False)


CHILD = sa.Table(
    "child",
    MD,
    _id(),
    _tenant(),
    sa.Column("name", sa.String(200)),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("left_on", sa.Date),
)
CHILD_FILE = sa.Table(
    "child_file",
    MD,
    _id(),
    _tenant(),
    sa.Column("name", sa.String(200)),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("left_on", sa.Date),
)
PHOTO = sa.Table(
    "photo",
    MD,
    _id(),
    _tenant(),
    sa.Column("child_id", sa.Integer, sa.ForeignKey("child.id"), nullable=False),
    sa.Column("path", sa.String(100)),
)
PHOTO_TAG = sa.Table(
    "photo_tag",
    MD,
    _id(),
    sa.Column("photo_id", sa.Integer, sa.ForeignKey("photo.id"), nullable=False),
)
MEDICAL = sa.Table(
    "medical",
    MD,
    _id(),
    _tenant(),
    sa.Column("file_id", sa.Integer, nullable=False),  # no foreign key: a related table
)
MEDICAL_FILE = sa.Table(
    "medical_file",
    MD,
    _id(),
    sa.Column(
        "medical_id", sa.Integer, sa.ForeignKey("medical.id", ondelete="CASCADE"), nullable=False
    ),
)
CONTACT = sa.Table(
    "contact",
    MD,
    _id(),
    _tenant(),
    sa.Column("file_id", sa.Integer, nullable=False),
    sa.Column("phone", sa.String(40)),
)
NOTE = sa.Table(
    "note",
    MD,
    _id(),
    sa.Column(
        "child_id", sa.Integer, sa.ForeignKey("child.id", ondelete="CASCADE"), nullable=False
    ),
)
NOTE_REPLY = sa.Table(
    "note_reply",
    MD,
    _id(),
    sa.Column("note_id", sa.Integer, sa.ForeignKey("note.id", ondelete="CASCADE"), nullable=False),
)
SEAT = sa.Table(
    "seat",
    MD,
    _id(),
    sa.Column("child_id", sa.Integer, sa.ForeignKey("child.id", ondelete="SET NULL")),
)


@dataclass(frozen=True)
class Child:
    """One drawn child and everything that points at it."""

    tenant: int
    status: str
    left_on: dt.date | None
    photos: tuple[int, ...]  # tags per photo
    medical: tuple[int, ...]  # files per medical record
    contacts: tuple[bool, ...]  # already masked?
    notes: tuple[int, ...]  # replies per note
    seat: bool


children = st.builds(
    Child,
    tenant=st.sampled_from([1, 1, 2]),
    status=st.sampled_from(["Left", "Left", "Full"]),
    left_on=st.sampled_from(LEFT_ON),
    photos=st.lists(st.integers(0, 2), max_size=2).map(tuple),
    medical=st.lists(st.integers(0, 1), max_size=2).map(tuple),
    contacts=st.lists(st.booleans(), max_size=2).map(tuple),
    notes=st.lists(st.integers(0, 2), max_size=2).map(tuple),
    seat=st.booleans(),
)


@dataclass
class Seeded:
    """The rows inserted per table, and what the rules must do to them, by key."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    gone: dict[str, set[int]] = field(default_factory=dict)  # table → ids deleted
    changed: dict[str, set[int]] = field(default_factory=dict)  # table → ids changed, kept
    # (rule, table) → rows the rule changes there
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, table: str, **row: Any) -> int:
        rows = self.rows.setdefault(table, [])
        row["id"] = sum(len(r) for r in self.rows.values()) + 1
        rows.append(row)
        return int(row["id"])

    def expect(self, rule: str, table: str, ids: set[int], *, gone: bool) -> None:
        (self.gone if gone else self.changed).setdefault(table, set()).update(ids)
        if ids:
            self.counts[(rule, table)] = self.counts.get((rule, table), 0) + len(ids)


def seed(drawn: list[Child]) -> Seeded:
    """The rows of `drawn` (a child and a child's file each), and what the two rules of tenant
    1 do to them, worked out here from the rules' meaning (not from the worker's code)."""
    s = Seeded()
    for n, c in enumerate(drawn):
        child = s.add(
            "child", organisation_id=c.tenant, name=f"Kind {n}", status=c.status, left_on=c.left_on
        )
        record = s.add(
            "child_file",
            organisation_id=c.tenant,
            name=f"Dossier {n}",
            status=c.status,
            left_on=c.left_on,
        )
        due = c.tenant == 1 and c.status == "Left" and c.left_on is not None
        anonymised = due and c.left_on is not None and c.left_on < ANON_CUTOFF
        deleted = due and c.left_on is not None and c.left_on < DELETE_CUTOFF
        photos, tags, medical, files, contacts, notes, replies = (set[int]() for _ in range(7))
        for count in c.photos:
            photo = s.add("photo", organisation_id=c.tenant, child_id=child, path=f"p{n}.jpg")
            photos.add(photo)
            tags |= {s.add("photo_tag", photo_id=photo) for _ in range(count)}
        for count in c.medical:
            medical_id = s.add("medical", organisation_id=c.tenant, file_id=record)
            medical.add(medical_id)
            files |= {s.add("medical_file", medical_id=medical_id) for _ in range(count)}
        for masked in c.contacts:
            phone = MASKED_PHONE if masked else f"06-{n:08d}"
            contact = s.add("contact", organisation_id=c.tenant, file_id=record, phone=phone)
            if not masked:
                contacts.add(contact)
        for count in c.notes:
            note = s.add("note", child_id=child)
            notes.add(note)
            replies |= {s.add("note_reply", note_id=note) for _ in range(count)}
        seat = s.add("seat", child_id=child) if c.seat else None
        if anonymised:
            s.expect(ANONYMISE, "child_file", {record}, gone=False)
            s.expect(ANONYMISE, "medical", medical, gone=True)
            s.expect(ANONYMISE, "medical_file", files, gone=True)
            s.expect(ANONYMISE, "contact", contacts, gone=False)
        if deleted:
            s.expect(DELETE, "child", {child}, gone=True)
            s.expect(DELETE, "photo", photos, gone=True)
            s.expect(DELETE, "photo_tag", tags, gone=True)
            s.expect(DELETE, "note", notes, gone=True)
            s.expect(DELETE, "note_reply", replies, gone=True)
            s.expect(DELETE, "seat", {seat} if seat else set(), gone=False)
    return s


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    ]
)
def kids_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind with the schema above."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kids.db'}"
        _create(url)
        yield url
        return
    make = dbs.postgres_database if request.param == "postgresql" else dbs.mariadb_database
    server = request.getfixturevalue(
        "pg_server_url" if request.param == "postgresql" else "mariadb_server_url"
    )
    with make(server) as url:
        _create(url)
        yield url


def _create(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        MD.create_all(engine)
    finally:
        engine.dispose()


def _reseed(url: str, seeded: Seeded) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(MD.sorted_tables):
                conn.execute(table.delete())
            for table in MD.sorted_tables:
                if seeded.rows.get(table.name):
                    conn.execute(table.insert(), seeded.rows[table.name])
    finally:
        engine.dispose()


def _snapshot(url: str) -> dict[str, dict[int, dict[str, Any]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: {r["id"]: dict(r) for r in conn.execute(sa.select(t)).mappings()}
                for t in MD.sorted_tables
            }
    finally:
        engine.dispose()


def _cli(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Exit code and standard output (the log lines go to standard error)."""
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def _audited(state: StateStore, after: int) -> tuple[int, dict[tuple[str, str], int]]:
    """The last seq, and the rows per (rule, table) of the batch.applied records after `after`."""
    counts: dict[tuple[str, str], int] = {}
    last = after
    with state.audit_snapshot() as (_head, records):
        for record in records:
            last = record.seq
            if record.seq <= after or record.kind != "batch.applied":
                continue
            payload = (
                record.payload if isinstance(record.payload, dict) else json.loads(record.payload)
            )
            for table, rows in payload["rows"].items():
                key = (str(record.rule), table)
                counts[key] = counts.get(key, 0) + int(rows)
    return last, counts


def _planned(output: str) -> dict[tuple[str, str], int]:
    doc = json.loads(output)
    [pair] = doc["pairs"]
    cutoffs = {r["rule"]: r["cutoff"] for r in pair["rules"]}
    assert cutoffs == {ANONYMISE: ANON_CUTOFF.isoformat(), DELETE: DELETE_CUTOFF.isoformat()}
    assert doc["totals"]["rows"] == sum(sum(r["tables"].values()) for r in pair["rules"])
    return {(r["rule"], t): n for r in pair["rules"] for t, n in r["tables"].items()}


def test_the_mapping_validates_and_warns_about_the_cascades(kids_url: str, tmp_path: Path) -> None:
    """The schema is valid for the mapping; the unmapped cascades are warnings, not errors."""
    write_config(tmp_path / "config", PRODUCT, CUSTOMERS)
    code, out = validate(tmp_path / "config", {ENV: kids_url})
    assert code == 0, out
    assert "note" in out and "CASCADE" in out


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=st.lists(children, min_size=1, max_size=8))
def test_plan_counts_per_table_what_the_run_changes_and_audits(
    kids_url: str, tmp_path: Path, state: StateStore, drawn: list[Child]
) -> None:
    """For any rows: plan per (rule, table) == the run's audit per (rule, table) == the rows
    that left or changed by key; nothing else changed, tenant 2 and Full pupils untouched."""
    config = tmp_path / "config"
    if not config.exists():
        write_config(config, PRODUCT, CUSTOMERS)
    seeded = seed(drawn)
    _reseed(kids_url, seeded)
    env = {
        ENV: kids_url,
        "RETENTION_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "RETENTION_PEPPER": PEPPER.decode(),
    }
    before = _snapshot(kids_url)
    common = ["--config", str(config), "--customer", "kdv-a", "--at", AT]

    code, out = _cli(["plan", "--format", "json", *common], env)
    assert code == 0, out
    planned = _planned(out)
    assert _snapshot(kids_url) == before  # plan changes nothing
    start, _ = _audited(state, 0)
    code, out = _cli(["run", "--once", *common], env)
    assert code == 0, out
    _, audited = _audited(state, start)
    after = _snapshot(kids_url)

    assert planned == seeded.counts, (planned, seeded.counts)
    assert audited == seeded.counts, (audited, seeded.counts)
    for table, rows in before.items():
        gone = {k for k in rows if k not in after[table]}
        changed = {k for k in after[table] if after[table][k] != rows[k]}
        assert gone == seeded.gone.get(table, set()), table
        assert changed == seeded.changed.get(table, set()), table
    for key in seeded.changed.get("seat", set()):
        assert after["seat"][key]["child_id"] is None
