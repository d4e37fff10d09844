"""`plan --explain`: each rule's selection as the database plans it, and the index advice.

A shared `child` table of 12,000 rows (20 tenants, every tenth row expired), large by the
database's own estimate after ANALYZE. Indexes are added one by one, as a schema grows, and
the statistics refreshed each time:

- only one on the time basis: the plan reads the table whole (SQLite) or searches that index
  and filters the tenant (PostgreSQL, MariaDB): the `CREATE INDEX` on (tenant column, time
  basis) is advised;
- one per column, on the tenant column too: PostgreSQL and MariaDB search the tenant's index
  and filter the date, still advised; SQLite, which reads the date through its date functions
  (no index serves it), searches the tenant's index, which is the best it can do: nothing;
- the advised index: every database searches it and nothing is advised.

Nothing changes in the database, and no line of the advice holds a value. A rule on `parent`
whose time basis is the latest left_on of a parent's children: no index is advised, with the
reason. On each backend.
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from connectors.engines import process_engines
from connectors.sqlexplain import estimated_rows
from tests.integration.own_config import CATALOGUE, execute, rows, write_config
from worker.cli import main

PRODUCT = """\
product: kids
tenancy: {column: organisation_id}
database: {url_env: KIDS_URL}
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {name: name}
    dates: {left: left_on}
rules:
  - id: kids.child.left
    subject: child
    after: {date: left, period: 12m}
    action: delete
"""
RELATED = """\
product: kids
tenancy: {column: organisation_id}
database: {url_env: KIDS_URL}
subjects:
  parent:
    kind: parent
    table: parent
    key: [id]
    columns: {name: name}
    dates:
      last_child_left:
        latest: left_on
        from: {table: child, references: {organisation_id: organisation_id, parent_id: id}}
rules:
  - id: kids.parent.children-left
    subject: parent
    after: {date: last_child_left, period: 12m}
    action: anonymise
    with: {name: "null"}
"""
PARENTS = CATALOGUE.replace("kinds:\n", "kinds:\n  parent: {label: Ouder}\n").replace(
    "      child: [name, birth_date, photo]\n",
    "      child: [name, birth_date, photo]\n      parent: [name]\n",
)
CUSTOMER = "products:\n  kids:\n    tenant: 7\n"
ROWS = 12_000
TENANTS = 20
SQLITE_NOTE = (
    "SQLite reads the time basis through its date functions, which no index serves: an index "
    "that starts with the tenant column is the best it can search"
)
ADVISED = "CREATE INDEX ix_child_organisation_id_left_on ON child (organisation_id, left_on)"


def seed(url: str, children: int = ROWS) -> None:
    """child: `children` rows over TENANTS tenants (7 among them), every tenth one expired,
    each with one of 50 parents; besides the primary keys only an index on the foreign key."""
    execute(
        url,
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, organisation_id INTEGER NOT NULL, "
        "name VARCHAR(50))",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, organisation_id INTEGER NOT NULL, "
        "parent_id INTEGER, name VARCHAR(50), left_on DATE)",
        "CREATE INDEX child_parent ON child (parent_id)",
    )
    parents = [{"id": i, "org": 1 + i % TENANTS, "name": f"Ouder {i}"} for i in range(1, 51)]
    execute(url, "INSERT INTO parent VALUES (:id, :org, :name)", params=parents)
    values = [
        {
            "id": i,
            "org": 1 + i % TENANTS,
            "parent": 1 + i % 50,
            "name": f"Kind {i}",
            "left_on": "2020-01-01" if i % 10 == 6 else "2026-11-01",
        }
        for i in range(1, children + 1)
    ]
    execute(url, "INSERT INTO child VALUES (:id, :org, :parent, :name, :left_on)", params=values)


def index(url: str, statement: str) -> None:
    """Create an index and refresh the optimiser's statistics (its row estimate, the
    index's use). Each `plan --explain` a person runs is a new process: the connections this
    one keeps would plan with the statistics they read when they opened (SQLite)."""
    backend = sa.make_url(url).get_backend_name()
    analyse = {"postgresql": "ANALYZE child", "mysql": "ANALYZE TABLE child"}.get(backend)
    execute(url, statement, analyse or "ANALYZE")
    process_engines().dispose()


def explain(root: Path, url: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["plan", "--explain", "--config", str(root), "--at", "2026-11-29T12:00:00Z"],
        env={"KIDS_URL": url, "RETENTION_STATE_URL": f"sqlite:///{root / 'state.db'}"},
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def child_rule(out: str) -> tuple[str, list[str]]:
    """What `plan --explain` says of the child rule after its plan: the line on how the
    selection reads the table, then the others (note, advice)."""
    part = out.split("rule kids.child.left on child:")[1].split("\n\n")[0]
    said = [line.strip() for line in part.splitlines() if line.strip() and "|" not in line]
    assert not any(re.search(r"\d", line) for line in said[1:]), said  # names, never values
    return said[0], said[1:]


def test_explain_advises_the_tenant_and_date_index_until_the_plan_searches_it(
    tmp_path: Path, any_db_url: str
) -> None:
    write_config(tmp_path, PRODUCT, {"a": CUSTOMER})
    seed(any_db_url)
    sqlite = sa.make_url(any_db_url).get_backend_name() == "sqlite"
    sqlite_note = [SQLITE_NOTE] if sqlite else []
    before = rows(any_db_url, "child", ("id",))

    index(any_db_url, "CREATE INDEX child_left ON child (left_on)")
    code, out = explain(tmp_path, any_db_url)
    assert code == 0, out
    reads, said = child_rule(out)
    how = "reads the whole table" if sqlite else "searches child_left (left_on)"
    assert reads == f"the selection {how} (about {ROWS:,} rows in child)" or not sqlite, out
    assert reads.startswith(f"the selection {how} (about "), out
    assert said == [
        f"advice: no index on (organisation_id, left_on) serves the selection (the plan {how}); "
        f"create one: {ADVISED};"
    ], out
    assert "\n1 index advised" in out, out

    index(any_db_url, "CREATE INDEX child_org ON child (organisation_id)")
    code, out = explain(tmp_path, any_db_url)
    assert code == 0, out
    reads, said = child_rule(out)
    if sqlite:  # the date is read through SQLite's date functions: the tenant's index is all
        assert reads.startswith("the selection searches child_org (organisation_id), which "), out
        assert said == sqlite_note and "\n0 indexes advised" in out, out
    else:  # the tenant's rows are searched and the date of each one tested: still advised
        assert reads.startswith("the selection searches child_org (organisation_id) (about "), out
        assert len(said) == 1 and said[0].endswith(f"create one: {ADVISED};"), out
        assert "\n1 index advised" in out, out

    index(any_db_url, ADVISED)
    code, out = explain(tmp_path, any_db_url)
    assert code == 0, out
    reads, said = child_rule(out)
    searched = "child_org (organisation_id)" if sqlite else ADVISED.split()[2]
    assert reads.startswith(f"the selection searches {searched}"), out
    assert ", which serves it (about " in reads, out
    assert said == sqlite_note and "\n0 indexes advised" in out, out

    assert "Kind " not in out  # names, plans and estimates only
    assert rows(any_db_url, "child", ("id",)) == before  # plan --explain changes nothing


def test_explain_says_why_no_index_serves_a_time_basis_read_from_a_related_table(
    tmp_path: Path, any_db_url: str
) -> None:
    """The FlexKids parent rule's kind: the latest left_on of a parent's children. No index
    of `parent` serves that date, so none is advised, and the note says why; the children's
    look-up in the plan is the sub-select's, not the selection's own reading."""
    write_config(tmp_path, RELATED, {"a": CUSTOMER}, PARENTS)
    seed(any_db_url, children=200)
    code, out = explain(tmp_path, any_db_url)
    assert code == 0, out
    part = out.split("rule kids.parent.children-left on parent:")[1]
    assert (
        "    no index advised: the time basis is the latest child.left_on of each row's related "
        "rows, which no index of parent serves\n"
    ) in part, out
    assert "advice:" not in out and "0 indexes advised" in out, out
    assert "Ouder " not in out and "Kind " not in out


def test_explain_refuses_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plan", "--explain", "--format", "json"])
    assert result.exit_code == 2
    assert "--explain prints text" in result.output


def test_the_row_estimate_of_a_mixed_case_table_is_its_own(pg_url: str) -> None:
    """PostgreSQL folds an unquoted name to lower case: the estimate of "Child" (12,000 rows)
    was child's (5 rows, so no advice) or unknown when no child exists."""
    execute(
        pg_url,
        'CREATE TABLE "Child" (id INTEGER PRIMARY KEY, "Left" DATE)',
        "CREATE TABLE child (id INTEGER PRIMARY KEY)",
        "INSERT INTO \"Child\" SELECT i, DATE '2020-01-01' FROM generate_series(1, 12000) i",
        "INSERT INTO child SELECT i FROM generate_series(1, 5) i",
        'ANALYZE "Child"',
        "ANALYZE child",
    )
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            table = sa.Table("Child", sa.MetaData(), autoload_with=conn)
            assert estimated_rows(conn, table) == 12_000
    finally:
        engine.dispose()
