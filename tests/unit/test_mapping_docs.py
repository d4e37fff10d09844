"""docs/configuration.md, "Mapping a real schema": every YAML block of the section is a valid
mapping for the schema the section gives, so the documentation cannot drift from the code.

Each block, under the product head the section names, is loaded through the configuration
loader and then checked by `retention-worker validate` against the section's SQL schema,
created in SQLite.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support import REPO
from worker.cli import main
from worker.configload import load_config

DOC = REPO / "docs" / "configuration.md"
HEAD = """\
product: school
database: {url_env: SCHOOL_DATABASE_URL}
tenancy: {column: school_id}
"""
CATALOGUE = """\
kinds:
  child: {label: Kind}
  staff: {label: Personeel}
categories:
  name: {label: Naam}
  email: {label: E-mailadres}
  phone: {label: Telefoonnummer}
  health: {label: Gezondheidsgegevens, special: true}
  ip: {label: IP-adres}
products:
  school:
    label: School
    annex: A.0
    processes:
      child: [name, phone, health, ip]
      staff: [name, email]
"""
CUSTOMER = "customer: basisschool-de-eik\nproducts:\n  school:\n    tenant: 7\n"


def section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("\n## Mapping a real schema\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", section(), flags=re.DOTALL | re.MULTILINE)


YAML = blocks("yaml")


def test_the_section_shows_each_construct() -> None:
    """An example of each construct: a related table's latest date, first_of, conditions,
    related rows, a table without a key."""
    text = "\n".join(YAML)
    for construct in ("latest:", "if_none:", "first_of:", "where:", "related:", "key: []"):
        assert construct in text, construct
    assert len(blocks("sql")) == 1


@pytest.mark.parametrize("block", YAML, ids=[f"block-{i}" for i in range(len(YAML))])
def test_each_example_loads_and_validates_against_the_documented_schema(
    tmp_path: Path, block: str
) -> None:
    """The block loads without a problem, and live `validate` on the section's schema
    passes (exit 0)."""
    config = tmp_path / "config"
    (config / "products").mkdir(parents=True)
    (config / "customers").mkdir()
    (config / "catalogue.yaml").write_text(CATALOGUE, encoding="utf-8")
    (config / "products" / "school.yaml").write_text(HEAD + block, encoding="utf-8")
    (config / "customers" / "basisschool-de-eik.yaml").write_text(CUSTOMER, encoding="utf-8")
    assert load_config(config).problems == ()

    database = tmp_path / "school.db"
    with sqlite3.connect(database) as conn:
        conn.executescript(blocks("sql")[0])
        conn.execute("INSERT INTO pupil (id, school_id, status) VALUES (1, 7, 'Full')")
        conn.execute("INSERT INTO staff (id, school_id) VALUES (1, 7)")
        conn.execute("INSERT INTO access_log (school_id, logged_at) VALUES (7, '2026-01-01')")
    conn.close()
    result = CliRunner().invoke(
        main,
        ["validate", "--config", str(config)],
        env={"SCHOOL_DATABASE_URL": f"sqlite:///{database}"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
