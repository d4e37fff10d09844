"""`validate --offline` refuses a dependent that would reach other tenants' rows."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tests import kidsapp
from worker.cli import main


def test_references_without_the_tenant_column_of_the_key_are_refused_offline(
    tmp_path: Path,
) -> None:
    """Key [tenant_id, id], a dependent referencing only id: exit 2 at its references, with
    the fix, before any database is opened."""
    subjects = kidsapp.mapping()["subjects"]
    subjects["child"] = {
        **subjects["child"],
        "key": ["tenant_id", "id"],
        "dependents": [{"table": "child_photo", "references": {"child_id": "id"}}],
    }
    folder = kidsapp.write_config(tmp_path / "config", product=kidsapp.mapping(subjects=subjects))
    result = CliRunner().invoke(
        main, ["validate", "--offline", "--config", str(folder)], env={"RETENTION_CONFIG_DIR": ""}
    )
    assert result.exit_code == 2, result.output
    assert "products/kidsapp.yaml: subjects.child.dependents.0.references" in result.output
    assert "add `tenant_id: tenant_id` to its references" in result.output
    fixed = {
        **subjects["child"],
        "dependents": [
            {"table": "child_photo", "references": {"child_id": "id", "tenant_id": "tenant_id"}}
        ],
    }
    folder = kidsapp.write_config(
        tmp_path / "fixed", product=kidsapp.mapping(subjects={"child": fixed})
    )
    result = CliRunner().invoke(main, ["validate", "--offline", "--config", str(folder)])
    assert result.exit_code == 0, result.output
