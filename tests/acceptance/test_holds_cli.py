"""Record holds through the real CLI, every backend: a key written as an operator would write
it (an upper-case UUID, one without hyphens, a zero-padded number, a date-time with a space)
names the row the database stores, so the next run keeps it; a key that names no row, or an
empty one, is refused; a released hold cannot be released again."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.acceptance.harness import cli

PEPPER = "break78-pepper-0123456789"
OLD = dt.date(2020, 1, 1)
ROW_UUID = uuid.UUID("abcdef01-2345-6789-abcd-ef0123456789")
ROW_AT = dt.datetime(2020, 1, 1, 10, 0)

MD = sa.MetaData()


def _table(name: str, *key: sa.Column) -> sa.Table:
    return sa.Table(
        name,
        MD,
        *key,
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(50)),
        sa.Column("health", sa.String(50)),
        sa.Column("left_on", sa.Date),
    )


THING = _table("thing", sa.Column("id", sa.Uuid, primary_key=True))
VISIT = _table(
    "visit",
    sa.Column("kid", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Date, primary_key=True),
)
STAMP = _table("stamp", sa.Column("at", sa.DateTime, primary_key=True))

# (table, key as the operator types it, the row's key as stored)
CASES = {
    "uuid-upper-case": ("thing", [str(ROW_UUID).upper()]),
    "uuid-without-hyphens": ("thing", [ROW_UUID.hex]),
    "integer-with-leading-zero": ("visit", ["07", "2020-01-02"]),
    "datetime-with-space": ("stamp", ["2020-01-01 10:00:00"]),
}


def _setup(tmp_path: Path, url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        MD.create_all(engine)
        common = {"tenant_id": 1, "name": "n", "health": "h", "left_on": OLD}
        with engine.begin() as conn:
            conn.execute(THING.insert(), [{"id": ROW_UUID, **common}])
            conn.execute(VISIT.insert(), [{"kid": 7, "day": dt.date(2020, 1, 2), **common}])
            conn.execute(STAMP.insert(), [{"at": ROW_AT, **common}])
    finally:
        engine.dispose()

    def subject(table: str, key: list[str]) -> dict[str, object]:
        return {
            "kind": "child",
            "table": table,
            "key": key,
            "columns": {"name": "name", "health": "health"},
            "dates": {"left": "left_on"},
        }

    subjects = {
        "thing": subject("thing", ["id"]),
        "visit": subject("visit", ["kid", "day"]),
        "stamp": subject("stamp", ["at"]),
    }
    rules = [
        {
            "id": f"kidsapp.{t}.left",
            "subject": t,
            "after": {"date": "left", "period": {"setting": "child_months", "default": 24}},
            "action": "delete",
        }
        for t in subjects
    ]
    folder = kidsapp.write_config(
        tmp_path / "config",
        product=kidsapp.mapping(subjects=subjects, rules=rules),
        customers={"kdv-a": {}},
    )
    return {
        "RETENTION_PEPPER": PEPPER,
        "RETENTION_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "RETENTION_CONFIG_DIR": str(folder),
        "RETENTION_LOG_LEVEL": "ERROR",
        kidsapp.URL_ENV: url,
        "PATH": "/usr/bin:/bin",
    }


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_record_hold_placed_with_an_equal_key_keeps_the_record(
    tmp_path: Path, any_db_url: str, case: str
) -> None:
    """`holds add ... --key K` exits 0; the next `run --once` leaves the record alone (and
    deletes the other tables' expired rows)."""
    table, key = CASES[case]
    env = _setup(tmp_path, any_db_url)
    assert cli(["migrate"], env).returncode == 0
    args = ["holds", "add", "--customer", "kdv-a", "--product", "kidsapp", "--table", table]
    for part in key:
        args += ["--key", part]
    placed = cli([*args, "--matter", "DPO-1", "--reason", "dossier", "--by", "alice"], env)
    assert placed.returncode == 0, placed.stderr
    ran = cli(["run", "--once"], env)
    assert ran.returncode == 0, ran.stderr
    assert _count(any_db_url, table) == 1, (
        f"{placed.stdout.strip()!r}, yet `run --once` deleted the held record of {table}"
    )


def test_an_empty_key_is_refused(tmp_path: Path) -> None:
    """`--key ""` is no value of the key column: refused (exit 2), like a key no row has."""
    env = _setup(tmp_path, f"sqlite:///{tmp_path / 'p.db'}")
    assert cli(["migrate"], env).returncode == 0
    args = ["holds", "add", "--customer", "kdv-a", "--product", "kidsapp", "--table", "visit"]
    placed = cli(
        [*args, "--key", "", "--key", "", "--matter", "M", "--reason", "r", "--by", "a"], env
    )
    assert placed.returncode == 2, placed.stdout
    missing = cli(
        [
            *args,
            "--key",
            "99",
            "--key",
            "2020-01-02",
            "--matter",
            "M",
            "--reason",
            "r",
            "--by",
            "a",
        ],
        env,
    )
    assert missing.returncode == 2
    assert "no row of visit of kdv-a × kidsapp has the key 99, 2020-01-02" in missing.stderr


def test_releasing_a_released_hold_again_is_refused_and_writes_no_second_event(
    tmp_path: Path,
) -> None:
    """docs/approvals.md, exit codes: 2 for "`holds release` of a released hold", even with
    the same --by and --reason; one release, one `hold.released` audit event."""
    env = _setup(tmp_path, f"sqlite:///{tmp_path / 'p.db'}")
    assert cli(["migrate"], env).returncode == 0
    placed = cli(
        ["holds", "add", "--customer", "kdv-a", "--matter", "M", "--reason", "r", "--by", "a"],
        env,
    )
    assert placed.returncode == 0, placed.stderr
    listed = json.loads(cli(["holds", "list", "--format", "json"], env).stdout)
    hold_id = listed[0]["hold_id"]
    release = ["holds", "release", hold_id, "--by", "bob", "--reason", "matter closed"]
    assert cli(release, env).returncode == 0
    again = cli(release, env)
    state = sa.create_engine(env["RETENTION_STATE_URL"])
    try:
        with state.connect() as conn:
            released = conn.execute(
                sa.text("SELECT COUNT(*) FROM audit_events WHERE kind = 'hold.released'")
            ).scalar()
    finally:
        state.dispose()
    assert released == 1, f"{released} hold.released events for one release"
    assert again.returncode == 2, again.stdout
