"""`run --once --at WHEN` (issue 9, point 11): a run evaluated as of an earlier instant changes
exactly the rows due then, a subset of what is due now, and the audit trail records the
instant; an instant after now is refused with exit 2 and nothing is touched.

Through the CLI in-process, on SQLite (the instant is the worker's, not the backend's: every
backend's cutoffs come from the same code, tested on all three elsewhere).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from tests.integration.own_config import rows, write_config
from tests.support import PEPPER
from worker.cli import main
from worker.state import StateStore

ENV = "KIDS_DATABASE_URL"
PRODUCT = """\
product: kids
database: {url_env: KIDS_DATABASE_URL}
tenancy: {column: organisation_id}
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
CUSTOMERS = {
    "kdv-a": "timezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 1\n",
    "kdv-b": "timezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 2\n",
}
# As of WHEN (Amsterdam) the cutoff is 2025-03-10; now (2026-11-29 or later) it is 2025-11-29
# or later, so rows 2 and 3 are due now but were not at WHEN.
WHEN = "2026-03-10T12:00+01:00"
SEED = [
    (1, 1, dt.date(2025, 3, 9)),  # due at WHEN
    (2, 1, dt.date(2025, 3, 10)),  # on WHEN's cutoff: kept then, due now
    (3, 1, dt.date(2025, 6, 1)),  # due now only
    (4, 2, dt.date(2020, 1, 1)),  # another customer's: never touched by kdv-a's run
]


def _setup(tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    url = f"sqlite:///{tmp_path / 'kids.db'}"
    md = sa.MetaData()
    child = sa.Table(
        "child",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("organisation_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(50)),
        sa.Column("left_on", sa.Date),
    )
    engine = sa.create_engine(url)
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                child.insert(),
                [
                    {"id": i, "organisation_id": t, "name": f"Kind {i}", "left_on": d}
                    for i, t, d in SEED
                ],
            )
    finally:
        engine.dispose()
    config = tmp_path / "config"
    write_config(config, PRODUCT, CUSTOMERS)
    env = {
        ENV: url,
        "RETENTION_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "RETENTION_PEPPER": PEPPER.decode(),
    }
    return url, env, config


def _cli(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def _records(state: StateStore) -> list[tuple[str, str | None, dict[str, Any]]]:
    with state.audit_snapshot() as (_head, found):
        return [
            (r.kind, r.rule, r.payload if isinstance(r.payload, dict) else json.loads(r.payload))
            for r in found
        ]


def test_a_run_at_an_earlier_instant_changes_exactly_the_rows_due_then(
    tmp_path: Path, state: StateStore
) -> None:
    """At WHEN only row 1 goes (by key); the audit says as of when, with WHEN's cutoff. A run
    now then takes rows 2 and 3. Tenant 2's row stays through both."""
    url, env, config = _setup(tmp_path)
    before = rows(url, "child", ("id",))
    common = ["--config", str(config), "--customer", "kdv-a"]

    past = _cli(["run", "--once", *common, "--at", WHEN], env)

    assert past.exit_code == 0, past.output
    after = rows(url, "child", ("id",))
    assert set(before) - set(after) == {(1,)}
    assert all(after[k] == before[k] for k in after)
    records = _records(state)
    [started] = [p for kind, _, p in records if kind == "run.started"]
    assert started["as_of"] == "2026-03-10T11:00:00.000000+00:00"
    [intent] = [p for kind, _, p in records if kind == "batch.intent"]
    assert intent["cutoff"] == "2025-03-10"
    assert intent["rows"] == {"child": 1}

    now = _cli(["run", "--once", *common], env)

    assert now.exit_code == 0, now.output
    assert set(rows(url, "child", ("id",))) == {(4,)}
    assert rows(url, "child", ("id",))[(4,)] == before[(4,)]
    started_now = [p for kind, _, p in _records(state) if kind == "run.started"][-1]
    assert dt.datetime.fromisoformat(started_now["as_of"]) > dt.datetime.fromisoformat(
        started["as_of"]
    )


def test_a_run_at_an_instant_after_now_is_refused_and_touches_nothing(
    tmp_path: Path, state: StateStore
) -> None:
    """A future WHEN exits 2 saying why and what to use instead; no row, no audit record.
    --at without --once, and a WHEN that is no date, exit 2 too."""
    url, env, config = _setup(tmp_path)
    before = rows(url, "child", ("id",))
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).date().isoformat()

    refused = _cli(["run", "--once", "--config", str(config), "--at", later], env)

    assert refused.exit_code == 2
    assert f"--at {later} is after now" in refused.output
    assert "plan --at" in refused.output
    assert rows(url, "child", ("id",)) == before
    assert _records(state) == []
    daemon = _cli(["run", "--config", str(config), "--at", WHEN], env)
    assert daemon.exit_code == 2
    assert "--at go with --once" in daemon.output
    garbled = _cli(["run", "--once", "--config", str(config), "--at", "last tuesday"], env)
    assert garbled.exit_code == 2
    assert "is not an ISO date or date-time" in garbled.output
    assert rows(url, "child", ("id",)) == before


@pytest.mark.parametrize(
    "when", ["0001-01-01", "0001-01-01T00:00+14:00", "1899-12-31", "1999-12-31"]
)
def test_an_instant_before_the_earliest_is_refused_by_run_and_plan(
    tmp_path: Path, state: StateStore, when: str
) -> None:
    """Year 1 (calendar arithmetic past its start) and anything before 2000 (cutoffs before
    the earliest date the worker reads) exit 2 with the bound and no traceback; nothing runs."""
    url, env, config = _setup(tmp_path)
    before = rows(url, "child", ("id",))
    for command in (["run", "--once"], ["plan"]):
        refused = _cli([*command, "--config", str(config), "--at", when], env)
        assert refused.exit_code == 2, refused.output
        assert f"--at {when} is before 2000-01-01" in refused.output
        assert "Traceback" not in refused.output
    assert rows(url, "child", ("id",)) == before
    assert _records(state) == []
