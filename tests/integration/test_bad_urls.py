"""A product database URL the worker cannot use: exit 2 from validate, a clear per-pair error
from plan and run --once (the other customer runs), the password masked, never a traceback.

No server is needed: every URL is refused before any connection (connectors.reach). Customer
B's database is a SQLite file with expired rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.integration.own_config import write_config
from tests.integration.test_timeouts import CUSTOMERS, PRODUCT, ids, seed
from tests.support import PEPPER, copy_config
from worker.cli import main

SECRET = "pw-9f3b1c"
BAD = {
    "unknown driver": (f"postgresql+nosuch://app:{SECRET}@127.0.0.1/kids", "driver 'nosuch'"),
    "not a URL": (f"://x{SECRET}", "not valid"),
    "no database": (f"postgresql+psycopg://app:{SECRET}@127.0.0.1", "names no database"),
    "bad port": (f"mysql+pymysql://app:{SECRET}@127.0.0.1:99999/kids", "port 99999"),
    "unknown option": (
        f"postgresql+psycopg://app:{SECRET}@127.0.0.1/kids?sslmod=require",
        "query option(s) sslmod",
    ),
    "mysql option": (f"mysql+pymysql://app:{SECRET}@127.0.0.1/kids?bogus=1", "bogus"),
    "no driver": (f"mysql://app:{SECRET}@127.0.0.1/kids", "names no driver"),
    "sqlite memory": ("sqlite://", "names no SQLite file"),
}


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_product_url_is_refused_by_every_command(case: str, tmp_path: Path) -> None:
    url, why = BAD[case]
    b_url = f"sqlite:///{tmp_path / 'b.db'}"
    seed(b_url)
    config = tmp_path / "config"
    write_config(config, PRODUCT.replace("STATEMENT", "60"), CUSTOMERS)
    env = {
        "KIDS_A_URL": url,
        "KIDS_B_URL": b_url,
        "RETENTION_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "RETENTION_PEPPER": PEPPER.decode(),
        "RETENTION_LOG_LEVEL": "ERROR",
    }
    code, out = invoke(["validate", "--config", str(config)], env)
    assert code == 2, out
    assert "customers/a.yaml: products.kids.database.url_env" in out
    assert "KIDS_A_URL is not usable" in out and why in out

    code, out = invoke(["plan", "--config", str(config), "--format", "json"], env)
    assert code == 1, out
    assert "KIDS_A_URL is not usable" in out and why in out

    assert invoke(["migrate"], env)[0] == 0
    code, out = invoke(["run", "--once", "--config", str(config)], env)
    assert code == 1, out
    assert "a × kids: FAILED; eligible rows not counted" in out
    assert "KIDS_A_URL is not usable" in out and why in out
    assert "b × kids: ok; 2 row(s) eligible, 2 row(s) changed" in out
    assert ids(b_url) == [3]
    for text in (out,):
        assert SECRET not in text
        assert "Traceback" not in text


def test_a_bad_url_in_the_demo_env_fails_that_pair_only(tmp_path: Path) -> None:
    """`demo` with its demo.env edited to a bad product URL: that pair fails with the reason,
    the command exits 1 without a traceback, the password masked."""
    from demo.walkthrough import demo_env
    from worker.config.load import load_config

    config_dir = copy_config(tmp_path)
    folder = tmp_path / "demo"
    folder.mkdir()
    env = demo_env(folder, load_config(config_dir))
    name = sorted(k for k in env if k.endswith("_URL") and not k.startswith("RETENTION_"))[0]
    env[name] = f"postgresql+nosuch://app:{SECRET}@127.0.0.1/x"
    (folder / "demo.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    code, out = invoke(["demo", "--dir", str(folder), "--config", str(config_dir)], {})
    assert code == 1, out
    assert f"{name} is not usable" in out
    assert SECRET not in out and "Traceback" not in out
