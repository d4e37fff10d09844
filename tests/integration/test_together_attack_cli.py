"""`python -m worker run --once` end to end with customers asked together (the default,
RETENTION_SCHEMA_REUSE_SECONDS unset: 30) and alone (0), on every backend: the same exit
code, the same summary, the same rows left. The configuration is the test's own (a temp
folder); a customer's tenant value does not convert and fails alone. A `sitecustomize`
module on the child's path notes each joint statement: only PostgreSQL's tick together
sends any.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.integration import together_support as ts
from tests.support import NOW, PEPPER, RUN_DIR, snapshot

TENANTS = range(1, 31)
DUE = {1, 7, 8, 30}
BROKEN = 13


def _seed(url: str) -> None:
    rows = [{"id": t, "org": t, "left_on": "2026-10-01"} for t in TENANTS]
    rows += [{"id": 100 + t, "org": t, "left_on": "2019-01-01"} for t in sorted(DUE)]
    ts.execute(
        url,
        "DROP TABLE IF EXISTS child",
        "CREATE TABLE child (id integer PRIMARY KEY, org integer NOT NULL, "
        "name varchar(50), left_on date)",
        "INSERT INTO child (id, org, left_on) VALUES (:id, :org, :left_on)",
        params=rows,
    )


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=RUN_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


SITECUSTOMIZE = """\
import sqlalchemy as sa

def _note(_conn, _cursor, statement, *_args):
    if "rw_customers" in statement:
        with open({marks!r}, "a", encoding="utf-8") as out:
            out.write("joint\\n")

sa.event.listen(sa.engine.Engine, "before_cursor_execute", _note)
"""


def test_run_once_together_and_alone_print_and_leave_the_same(
    tmp_path: Path, any_db_url: str
) -> None:
    root = tmp_path / "config"
    customers = {
        f"c{t:02d}": ts.customer_text("'3xyz'" if t == BROKEN else str(t)) for t in TENANTS
    }
    ts.config_of(root, ts.SIMPLE, customers)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    results, joint = [], {}
    for label, reuse in (("together", None), ("alone", "0")):
        _seed(any_db_url)
        site, marks = tmp_path / f"site-{label}", tmp_path / f"joint-{label}.txt"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(marks=str(marks)))
        env = {
            **base,
            ts.ENV: any_db_url,
            "PYTHONPATH": os.pathsep.join([str(site), str(RUN_DIR.parent)]),
            "RETENTION_STATE_URL": f"sqlite:///{tmp_path / f'{label}.db'}",
            "RETENTION_PEPPER": PEPPER.decode(),
            "RETENTION_LOG_FORMAT": "json",
        }
        if reuse is not None:
            env["RETENTION_SCHEMA_REUSE_SECONDS"] = reuse
        assert _cli(["migrate"], env).returncode == 0
        done = _cli(["run", "--once", "--config", str(root), "--at", NOW.isoformat()], env)
        summary = re.sub(r"\b[0-9a-f]{32}\b", "RUN", done.stdout)
        results.append((done.returncode, summary, snapshot(any_db_url)))
        joint[label] = marks.read_text().count("joint") if marks.exists() else 0
    together, alone = results
    postgres = any_db_url.startswith("postgresql")
    expected = ts.joint_statements(len(TENANTS)) if postgres else 0  # 8, 15, then 7 customers
    assert joint == {"together": expected, "alone": 0}
    assert together == alone
    code, summary, rows = together
    assert code == 1, summary  # the broken customer's pair failed
    assert f"c{BROKEN:02d} × kids: FAILED" in summary
    assert len(rows["child"]) == len(TENANTS)
