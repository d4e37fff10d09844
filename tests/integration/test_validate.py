"""`retention-worker validate` on a copy of the tests' configuration, one break per test.

Each test copies tests/fixtures/config/ into its temporary folder, breaks exactly one thing
(in a file, or in a live PostgreSQL database built from the reference schemas) and runs the
real command: through click's CliRunner, and through a separate process for the end-to-end
cases. The
assertions check the exit code and the parts of the message a user acts on: the file, the
path inside it and what to fix. They do not compare whole lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.pool import NullPool

from tests.support import RUN_DIR, copy_config
from worker.cli import main

DB_VARIABLES = (
    "FLEXKIDS_DATABASE_URL",
    "KONNECT_ZONNESTRAAL_DATABASE_URL",
    "KONNECT_DE_VLINDER_DATABASE_URL",
)
KDV = "config/customers/kdv-zonnestraal.yaml"
VLINDER = "config/customers/bso-de-vlinder.yaml"
FLEXKIDS = "config/products/flexkids.yaml"
PASSWORD = "s3cret-pw"
UNREACHABLE = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:1/flexkids"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the tests' configuration, free to break."""
    return copy_config(tmp_path)


def edit(config_dir: Path, relative: str, old: str, new: str) -> int:
    """Replace the one occurrence of `old` in a file of the copy; return its 1-based line."""
    file = config_dir / relative
    text = file.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {relative}"
    file.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def validate(
    config_dir: Path, env: Mapping[str, str | None] | None = None, *, offline: bool = False
) -> tuple[int, str]:
    """Run `retention-worker validate` in-process; return the exit code and all output.

    The database variables are unset unless `env` sets them, so the outcome never depends
    on the caller's environment. A crash is re-raised rather than counted as exit code 1.
    """
    args = ["validate", "--config", str(config_dir)] + (["--offline"] if offline else [])
    full_env: dict[str, str | None] = dict.fromkeys(DB_VARIABLES)
    full_env.update(env or {})
    result = CliRunner().invoke(main, args, env=full_env, catch_exceptions=False)
    # click ≥ 8.2 interleaves stdout and stderr in `output`; 8.1 mixes them by default too.
    return result.exit_code, result.output


def run_process(config_dir: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `python -m worker validate` as its own process (the installed entry point's code)."""
    full_env = {k: v for k, v in os.environ.items() if k not in DB_VARIABLES}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "worker", "validate", "--config", str(config_dir)],
        cwd=RUN_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def execute(url: str, statement: str) -> None:
    """Run one DDL statement against a product database."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


# --- the tests' configuration ------------------------------------------------------------


def test_shipped_config_is_valid_against_live_databases(
    config_dir: Path, product_dbs: dict[str, str]
) -> None:
    """The tests' configuration exits 0 in a real process against the reference schemas."""
    done = run_process(config_dir, product_dbs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "files valid" in done.stdout
    assert "3 database(s) match their mapping" in done.stdout


def test_shipped_config_is_valid_offline_without_databases(config_dir: Path) -> None:
    """With --offline the tests' configuration exits 0 with no database variable set."""
    code, out = validate(config_dir, offline=True)
    assert code == 0, out
    assert "2 customer(s), 2 product(s), 9 rule(s): files valid" in out
    assert "database mapping" not in out


# --- broken files (no database needed) ----------------------------------------------------


def test_yaml_syntax_error_names_file_and_line(config_dir: Path) -> None:
    """An unclosed bracket exits 2 naming the file, the line found and the line it opened."""
    opened = edit(
        config_dir,
        "customers/kdv-zonnestraal.yaml",
        "settings: {months: 12}",
        "settings: {months: 12",
    )
    code, out = validate(config_dir, offline=True)
    assert code == 2, out
    assert KDV in out
    assert "YAML syntax error" in out
    assert f"line {opened + 1}, column" in out  # where the parser noticed
    assert f"starts at line {opened}," in out  # where the unclosed bracket is


def test_unknown_product_in_customer_file(config_dir: Path) -> None:
    """A customer naming a product no mapping exists for exits 2 and lists the known ones."""
    products = edit(
        config_dir,
        "customers/kdv-zonnestraal.yaml",
        "products:\n",
        "products:\n  kidsvisionn:\n    tenant: 5\n",
    )
    code, out = validate(config_dir, offline=True)
    assert code == 2, out
    assert KDV in out
    assert f"products.kidsvisionn (line {products + 1})" in out  # the line of its key
    assert "unknown product 'kidsvisionn'" in out
    assert "flexkids, konnect" in out


def test_unknown_category_in_product_mapping(config_dir: Path) -> None:
    """A column mapped to a misspelt category exits 2, names the column and lists categories."""
    line = edit(config_dir, "products/flexkids.yaml", "full_name: name", "full_name: nam")
    code, out = validate(config_dir, offline=True)
    assert code == 2, out
    assert f"{FLEXKIDS}: subjects.user.columns.full_name (line {line})" in out
    assert "unknown category 'nam'" in out
    assert "use one of name, address, postcode" in out
    # The product's customers are not blamed: their other products stay valid.
    assert "unknown product 'flexkids'" not in out
    assert "customers/" not in out


@pytest.mark.parametrize(
    ("months", "what"),
    [
        pytest.param(-3, "-3 months is below the minimum of 1", id="negative"),
        pytest.param(9999, "9999 months is more than the maximum of 600", id="absurd"),
    ],
)
def test_months_out_of_range(config_dir: Path, months: int, what: str) -> None:
    """A negative or absurd customer period exits 2 naming the setting and the allowed range."""
    line = edit(
        config_dir,
        "customers/kdv-zonnestraal.yaml",
        "child_months: 36",
        f"child_months: {months}",
    )
    code, out = validate(config_dir, offline=True)
    assert code == 2, out
    assert f"{KDV}: products.flexkids.settings.child_months (line {line})" in out
    assert what in out
    assert "set a whole number from 1 to 600" in out


def test_months_below_legal_floor(config_dir: Path) -> None:
    """Staff data includes contract data: 60 months exits 2 citing the fiscal 7-year floor."""
    line = edit(
        config_dir, "customers/kdv-zonnestraal.yaml", "staff_months: 84", "staff_months: 60"
    )
    code, out = validate(config_dir, offline=True)
    assert code == 2, out
    assert f"{KDV}: products.flexkids.settings.staff_months (line {line})" in out
    assert "below the legal floor 'fiscal'" in out
    assert "set at least 84 months" in out


# --- the live databases -------------------------------------------------------------------


def test_table_missing_from_live_database(config_dir: Path, product_dbs: dict[str, str]) -> None:
    """Dropping the FlexKids invoice table exits 2 naming the mapping, subject and table."""
    execute(product_dbs["FLEXKIDS_DATABASE_URL"], "DROP TABLE invoice CASCADE")
    code, out = validate(config_dir, product_dbs)
    assert code == 2, out
    line = _line_of(config_dir / "products/flexkids.yaml", "    table: invoice")
    assert f"{FLEXKIDS}: subjects.invoice.table (line {line}): invoice: table is missing" in out
    assert "the database of flexkids (shared)" in out
    assert out.count("invoice: table is missing") == 1  # one shared database, checked once
    assert "FLEXKIDS_DATABASE_URL" in out
    assert "create it there or correct the mapping" in out


def test_column_missing_from_live_database(config_dir: Path, product_dbs: dict[str, str]) -> None:
    """Dropping parent.bsn in the FlexKids database exits 2 naming the mapping and column."""
    execute(product_dbs["FLEXKIDS_DATABASE_URL"], "ALTER TABLE parent DROP COLUMN bsn")
    code, out = validate(config_dir, product_dbs)
    assert code == 2, out
    line = _line_of(config_dir / "products/flexkids.yaml", "      bsn: bsn", after="  parent:")
    assert (
        f"{FLEXKIDS}: subjects.parent.columns.bsn (line {line}): parent.bsn: column is missing"
        in out
    )
    assert "create it there or correct the mapping" in out


def test_unset_database_variable(config_dir: Path, product_dbs: dict[str, str]) -> None:
    """A customer whose product database variable is unset exits 2 naming the variable."""
    code, out = validate(config_dir, {**product_dbs, "KONNECT_DE_VLINDER_DATABASE_URL": None})
    assert code == 2, out
    assert f"{VLINDER}: products.konnect.database.url_env (line " in out
    assert "set KONNECT_DE_VLINDER_DATABASE_URL (or KONNECT_DE_VLINDER_DATABASE_URL_FILE)" in out


def test_unreachable_database_masks_password(config_dir: Path, product_dbs: dict[str, str]) -> None:
    """An unreachable database exits 1 in a real process, its URL shown with the password masked."""
    done = run_process(config_dir, {**product_dbs, "FLEXKIDS_DATABASE_URL": UNREACHABLE})
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "unreachable: flexkids (shared)" in out
    assert "postgres:***@127.0.0.1:1/flexkids" in out
    assert PASSWORD not in out


def _line_of(file: Path, text: str, after: str | None = None) -> int:
    """The 1-based line of the first line equal to `text` (after the line `after`)."""
    lines = file.read_text().splitlines()
    start = lines.index(after) if after is not None else 0
    return lines.index(text, start) + 1
