"""The policy fingerprint: the same configuration gives the same one, any change another."""

from __future__ import annotations

from pathlib import Path

from tests import kidsapp
from worker.configload import load_config
from worker.fingerprint import policy_document, policy_fingerprint


def fingerprints(folder: Path, **kwargs: object) -> dict[str, str]:
    config = load_config(kidsapp.write_config(folder, **kwargs))  # type: ignore[arg-type]
    config.raise_for_problems()
    return {c.customer: policy_fingerprint(config.catalogue, c, p) for c, p in config.pairs()}


def test_the_fingerprint_follows_every_setting_a_run_obeys(tmp_path: Path) -> None:
    """Unchanged files keep the fingerprint; a customer's setting, a breaker limit or the
    mapping's rule each change it, and only for the pairs they touch."""
    base = fingerprints(tmp_path / "a")
    assert base == fingerprints(tmp_path / "b")
    assert base["kdv-a"] != base["kdv-b"]  # tenants differ
    assert all(f.startswith("sha256:") and len(f) == 71 for f in base.values())
    setting = fingerprints(
        tmp_path / "c", customers={"kdv-a": {"settings": {"child_months": 36}}, "kdv-b": {}}
    )
    assert setting["kdv-a"] != base["kdv-a"]
    assert setting["kdv-b"] == base["kdv-b"]
    breaker = fingerprints(tmp_path / "d", product=kidsapp.mapping(breaker={"max_rows": 10}))
    assert breaker["kdv-a"] != base["kdv-a"] and breaker["kdv-b"] != base["kdv-b"]


def test_the_policy_document_holds_no_secret(tmp_path: Path) -> None:
    """The document names the URL variable, never a URL or a password."""
    config = load_config(kidsapp.write_config(tmp_path))
    customer, mapping = next(iter(config.pairs()))
    text = str(policy_document(config.catalogue, customer, mapping))
    assert kidsapp.URL_ENV in text and "://" not in text
