"""The policy fingerprint: the same configuration gives the same one, any change another."""

from __future__ import annotations

from pathlib import Path

from tests import kidsapp
from tests.support import FIXTURE_CONFIG
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


def test_the_joined_policy_text_is_the_documents_canonical_json(tmp_path: Path) -> None:
    """`policy_text` (shared parts serialised once per configuration) gives exactly the
    canonical JSON of `policy_document`, for every pair of the shipped example and of
    configurations whose customers differ in settings, time zone and name, and after a
    reload that changed the mapping (new objects, not the kept parts)."""
    from worker.audit import canonical_json
    from worker.fingerprint import policy_text, text_fingerprint

    shipped = load_config(FIXTURE_CONFIG)
    configs = [
        shipped,
        load_config(
            kidsapp.write_config(
                tmp_path / "a",
                customers={
                    "kdv-a": {"settings": {"child_months": 36}, "timezone": "America/Curacao"},
                    "kdv-b": {},
                },
            )
        ),
        load_config(
            kidsapp.write_config(tmp_path / "b", product=kidsapp.mapping(breaker={"max_rows": 10}))
        ),
    ]
    seen: set[str] = set()
    for config in configs:
        for customer, mapping in config.pairs():
            for _ in range(2):  # built, then from the kept parts
                text = policy_text(config.catalogue, customer, mapping)
                document = policy_document(config.catalogue, customer, mapping)
                assert text == canonical_json(document)
                assert text_fingerprint(text) == policy_fingerprint(
                    config.catalogue, customer, mapping
                )
            seen.add(text)
    assert len(seen) == sum(len(list(c.pairs())) for c in configs)
