"""No personal value reaches the audit trail or the logs; the trail verifies and detects tampering.

Runs the real command (`python -m worker run --once`) as a subprocess on databases seeded
with synthetic Dutch data, then searches every log line and every stored audit row for
every seeded name, e-mail address, phone number, BSN and IBAN.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from demo.generator import personal_values, seed
from tests.support import FIXTURE_CONFIG, NOW, RUN_DIR, fixture_config
from worker.app import database_url
from worker.policy import effective_rules, rule_cutoff


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**os.environ, "RETENTION_CONFIG_DIR": str(FIXTURE_CONFIG), **env},
        cwd=RUN_DIR,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _seed(env: dict[str, str]) -> set[str]:
    config = fixture_config()
    values: set[str] = set()
    for customer, mapping in config.pairs():
        url = database_url(customer, mapping, env)
        around = sorted(
            {
                rule_cutoff(r, NOW, customer.timezone).date
                for r in effective_rules(config.catalogue, customer, mapping)
            }
        )
        tenant = customer.products[mapping.product].tenant
        seed(
            url,
            mapping.product,
            tenant=int(tenant) if tenant is not None else None,
            today=NOW.date(),
            around=around,
            seed=7,
            size=25,
        )
    for customer, mapping in config.pairs():
        values |= personal_values(database_url(customer, mapping, env), mapping.product)
    return values


def _searchable(values: set[str]) -> set[str]:
    """Values long enough to be a real find, not a coincidence inside another word."""
    return {v for v in values if len(v) >= 5}


def test_audit_trail_and_logs_hold_no_personal_data(
    product_dbs: dict[str, str], tmp_path: Path
) -> None:
    """After a run, no seeded name, e-mail, phone, BSN or IBAN is in a log line or audit row."""
    values = _searchable(_seed(product_dbs))
    assert len(values) > 500  # the search means something only if there is much to find
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    env = {
        **product_dbs,
        "RETENTION_STATE_URL": state_url,
        "RETENTION_LOG_FORMAT": "json",
        "RETENTION_LOG_LEVEL": "DEBUG",
        "RETENTION_PEPPER": "integration-pepper-0123456789",
    }
    assert _cli(["migrate"], env).returncode == 0

    result = _cli(["run", "--once"], env)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "row(s) changed" in result.stdout
    logs = result.stderr.splitlines()
    assert any('"batch.applied"' in line for line in logs)
    engine = sa.create_engine(state_url)
    with engine.connect() as conn:
        audit_rows = [
            " ".join(str(v) for v in row)
            for row in conn.execute(sa.text("SELECT * FROM audit_events"))
        ]
        run_rows = [
            " ".join(str(v) for v in row) for row in conn.execute(sa.text("SELECT * FROM runs"))
        ]
    engine.dispose()
    assert len(audit_rows) > 20
    haystack = "\n".join([*logs, result.stdout, *audit_rows, *run_rows])
    leaked = sorted(v for v in values if v in haystack)
    assert leaked == []


def test_audit_verify_passes_then_names_the_first_altered_removed_or_reordered_event(
    product_dbs: dict[str, str], tmp_path: Path
) -> None:
    """`audit verify` exits 0 after runs and 1, naming the first bad event, after tampering."""
    _seed(product_dbs)
    state = tmp_path / "state.db"
    env = {
        **product_dbs,
        "RETENTION_STATE_URL": f"sqlite:///{state}",
        "RETENTION_PEPPER": "integration-pepper-0123456789",
    }
    assert _cli(["migrate"], env).returncode == 0
    assert _cli(["run", "--once"], env).returncode == 0
    assert _cli(["run", "--once", "--customer", "kdv-zonnestraal"], env).returncode == 0
    ok = _cli(["audit", "verify"], env)
    assert ok.returncode == 0, ok.stderr
    assert "chain intact" in ok.stdout
    pristine = state.read_bytes()
    engine = sa.create_engine(f"sqlite:///{state}")

    def tamper(*statements: str) -> subprocess.CompletedProcess[str]:
        state.write_bytes(pristine)
        with engine.begin() as conn:
            for sql in statements:
                conn.execute(sa.text(sql))
        engine.dispose()
        return _cli(["audit", "verify"], env)

    altered = tamper("UPDATE audit_events SET customer = 'another-customer' WHERE seq = 9")
    removed = tamper("DELETE FROM audit_events WHERE seq = 7")
    swapped = tamper(
        "UPDATE audit_events SET seq = -5 WHERE seq = 5",
        "UPDATE audit_events SET seq = 5 WHERE seq = 6",
        "UPDATE audit_events SET seq = 6 WHERE seq = -5",
    )
    for result, seq in ((removed, "7"), (swapped, "5")):
        assert result.returncode == 1
        assert f"event {seq}" in result.stderr, result.stderr
    assert altered.returncode == 1
    assert "event 9" in altered.stderr, altered.stderr
    state.write_bytes(pristine)
    assert _cli(["audit", "verify"], env).returncode == 0
