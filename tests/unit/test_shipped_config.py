"""The shipped config/ is the customers' to edit; the tests never depend on what it says.

Only the tests marked ``shipped_config`` here may read it, and they assert what every valid
configuration keeps: it loads, and the demo can seed what its mappings name. The rest of the
suite uses tests/fixtures/config (tests/conftest.py fails a test that opens config/), and the
last test shows that a customer's valid edit leaves the tests that read configuration green.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from demo.schemas import PRODUCTS, create_schema
from tests.acceptance.harness import copy_tree
from tests.support import FIXTURE_CONFIG, REPO, RUN_DIR
from worker.configload import load_config

SHIPPED = REPO / "config"
# Reading the shipped configuration by path; only this module may.
_SHIPPED_PATH = re.compile(
    r"""(REPO|parents?\[\d\]|parent\.parent)\s*/\s*["']config["']|cwd\s*=\s*REPO\b"""
)
# Tests that load configuration; the last two failed on this very edit while the tests read
# config/ (the rule test expected 36 months, the validate test edited "child_months: 36").
CONFIG_READERS = [
    "tests/unit/test_configload.py",
    "tests/unit/test_run.py",
    "tests/unit/test_scheduler.py",
    "tests/integration/test_rules.py::test_rule_changes_exactly_the_rows_past_its_cutoff"
    "[flexkids.child.deregistered.remove]",
    "tests/integration/test_validate.py::test_months_out_of_range",
]


@pytest.mark.shipped_config
def test_the_shipped_configuration_is_valid() -> None:
    """config/ as shipped (or as a customer validly edited it) loads without a problem."""
    config = load_config(SHIPPED)
    assert config.problems == ()
    assert list(config.pairs()), "the example configuration runs at least one pair"


@pytest.mark.shipped_config
@pytest.mark.parametrize("product", PRODUCTS)
def test_the_demo_schemas_hold_what_the_shipped_mappings_name(tmp_path: Path, product: str) -> None:
    """`make demo` seeds the shipped mappings: every table, key, column and reference exists."""
    mapping = load_config(SHIPPED).products[product]
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    create_schema(url, product)
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        found = {
            t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()
        }
    finally:
        engine.dispose()
    tenant = {mapping.tenancy.column} - {None}
    for subject in mapping.subjects.values():
        assert {*subject.key, *subject.columns, *subject.dates.values(), *tenant} <= found[
            subject.table
        ]
        pending = [(subject.table, d) for d in subject.dependents]
        while pending:
            parent, dep = pending.pop()
            assert {*dep.references, *dep.columns} <= found[dep.table], dep.table
            assert set(dep.references.values()) <= found[parent], dep.table
            pending += [(dep.table, d) for d in dep.dependents]


def test_no_test_names_the_shipped_configuration() -> None:
    """No test module but this one builds a path to config/ or runs a command beside it."""
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / "tests").rglob("*.py"))
        if path.name not in ("test_shipped_config.py", "conftest.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _SHIPPED_PATH.search(line)
    ]
    assert offenders == []
    assert not (RUN_DIR / "config").exists(), "subprocesses must not find a config/ by default"
    assert FIXTURE_CONFIG.resolve() != SHIPPED.resolve()


@pytest.mark.shipped_config
def test_a_valid_customer_edit_of_config_leaves_the_tests_green(tmp_path: Path) -> None:
    """child_months 36 → 24 in a copy of the repository: valid, and its config tests pass."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        text=True,
        check=True,
    )
    copy = tmp_path / "repo"
    copy_tree([n for n in listed.stdout.split("\0") if n], REPO, copy)
    customer = copy / "config" / "customers" / "kdv-zonnestraal.yaml"
    text = customer.read_text(encoding="utf-8")
    assert text.count("child_months: 36") == 1
    customer.write_text(text.replace("child_months: 36", "child_months: 24"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}

    valid = subprocess.run(
        [sys.executable, "-m", "worker", "validate", "--offline", "--config", "config"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr  # the edit is a valid one
    suite = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("--basetemp", str(tmp_path / "pytest")),
            *CONFIG_READERS,
        ],
        cwd=copy,
        env={**env, "PYTHONPATH": str(copy)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert suite.returncode == 0, suite.stdout[-4000:] + suite.stderr[-2000:]
    assert " passed" in suite.stdout
