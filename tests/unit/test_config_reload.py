"""The daemon survives bad configuration: a reload keeps the old one, a start sets aside only
what is broken.

`Daemon.load` is what SIGHUP calls (the acceptance tests send the real signal). Each kind of
bad input below once escaped `load_config` as an exception, or would have: a reload with it
must return False and leave the running configuration in place.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import PEPPER, copy_config
from worker.config import Customer
from worker.config import checks as config_checks
from worker.daemon import Daemon
from worker.settings import Settings
from worker.state import StateStore

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
KDV = "customers/kdv-zonnestraal.yaml"
FLEXKIDS = "products/flexkids.yaml"

Break = Callable[[Path, pytest.MonkeyPatch], None]


def _replace(relative: str, old: str, new: str) -> Break:
    def apply(config_dir: Path, _monkeypatch: pytest.MonkeyPatch) -> None:
        file = config_dir / relative
        text = file.read_text(encoding="utf-8")
        assert text.count(old) == 1
        file.write_text(text.replace(old, new), encoding="utf-8")

    return apply


def _append(relative: str, text: str) -> Break:
    def apply(config_dir: Path, _monkeypatch: pytest.MonkeyPatch) -> None:
        file = config_dir / relative
        file.write_text(file.read_text(encoding="utf-8") + text, encoding="utf-8")

    return apply


def _bytes(relative: str, raw: bytes) -> Break:
    def apply(config_dir: Path, _monkeypatch: pytest.MonkeyPatch) -> None:
        (config_dir / relative).write_bytes(raw)

    return apply


def _fifo(config_dir: Path, _monkeypatch: pytest.MonkeyPatch) -> None:
    (config_dir / KDV).unlink()
    os.mkfifo(config_dir / KDV)


def _yml(config_dir: Path, _monkeypatch: pytest.MonkeyPatch) -> None:
    (config_dir / "customers" / "kdv-de-regenboog.yml").write_text("customer: x\n")


def _faulty_check(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = config_checks.check_customer

    def boom(customer: Customer, *args: Any) -> None:
        if customer.customer == "kdv-zonnestraal":
            raise KeyError("a fault in a check")
        real(customer, *args)

    monkeypatch.setattr("worker.config.load.check_customer", boom)


LAUGHS = "x:\n" + "".join(
    f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else 'lol'}]\n" for i in range(10)
)

BREAKS: dict[str, Break] = {
    "impossible-date": _replace(KDV, "end_of_service: 2026-06-30", "end_of_service: 2026-13-30"),
    "february-30": _replace(KDV, "end_of_service: 2026-06-30", "end_of_service: 2026-02-30"),
    "tenant-true": _replace(KDV, "tenant: 1042", "tenant: true"),
    "duplicate-key": _replace(KDV, "tenant: 1042", "tenant: 1042\n    tenant: 2077"),
    "not-utf8": _bytes(KDV, "customer: kdv\n# caf\xe9\n".encode("latin-1")),
    "billion-laughs": _append(FLEXKIDS, LAUGHS),
    "deep-nesting": _bytes(KDV, b"a: " + b"[" * 100_000),
    "period-10-30": _replace(FLEXKIDS, "period: 1m\n", "period: " + "1" + "0" * 30 + "d\n"),
    "sql-in-a-name": _replace(FLEXKIDS, "table: app_user", "table: 'x; DROP TABLE y'"),
    "yml-file": _yml,
    "fifo": _fifo,
    "fault-in-a-check": _faulty_check,
}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(state_url).migrate()
    config_dir = copy_config(tmp_path)
    settings = Settings(config_dir=config_dir, state_url=state_url, http_port=0, pepper=PEPPER)
    made = Daemon(settings, {}, config_dir, clock=lambda: NOW)
    yield made
    if made.scheduler.running:
        made.scheduler.shutdown(wait=False)


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_a_reload_with_bad_input_keeps_the_running_configuration(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """SIGHUP after any kind of bad input: load() says no; the old configuration stays."""
    assert daemon.load() is True
    running = daemon.config
    assert running is not None and len(list(running.pairs())) == 4
    BREAKS[kind](daemon.config_dir, monkeypatch)
    assert daemon.load() is False
    assert daemon.config is running
    assert {j.id for j in daemon.scheduler.get_jobs()} == {
        f"{c.customer}/{p.product}" for c, p in running.pairs()
    }


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_at_start_bad_input_sets_aside_only_what_it_touches(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Started with one broken file, the daemon runs every pair that file does not describe."""
    BREAKS[kind](daemon.config_dir, monkeypatch)
    assert daemon.load() is False  # problems are reported, and the metric says invalid
    assert daemon.config is not None
    pairs = {(c.customer, p.product) for c, p in daemon.config.pairs()}
    if kind in (
        "billion-laughs",
        "period-10-30",
        "sql-in-a-name",
    ):  # the FlexKids mapping is set aside
        assert pairs == {("bso-de-vlinder", "konnect"), ("kdv-zonnestraal", "konnect")}
    elif kind == "yml-file":  # nothing it describes is loaded; everything else is
        assert len(pairs) == 4
    else:  # the customer file is set aside
        assert pairs == {("bso-de-vlinder", "flexkids"), ("bso-de-vlinder", "konnect")}
