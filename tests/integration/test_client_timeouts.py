"""A product server that accepts the connection and never answers fails its pair, in bounded
time; the other customer's run completes.

A tiny TCP listener in the test accepts every connection and stays silent (a hung server, or
a network that swallows everything past the handshake). Customer A's URL points at it, with
PostgreSQL's or MariaDB's protocol; customer B's database is a real SQLite file with expired
rows. `run --once` (worker.app.run_pairs) must end within the client-side bounds derived from
A's timeouts (connectors.reach), report A failed with a cause that names its masked URL, and
delete B's expired rows.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import Timeouts
from connectors.reach import client_options, connect_seconds, read_seconds
from tests.integration.own_config import write_config
from tests.integration.test_timeouts import CUSTOMERS, PRODUCT, ids, seed
from tests.support import NOW, PEPPER
from worker.app import build_runner, run_pairs
from worker.audit import AuditTrail
from worker.events import EventBus, Outcome
from worker.retry import RetryPolicy
from worker.state import StateStore

LOCK, STATEMENT = 1, 1
SECRET = "s3cret-silent"


class SilentServer:
    """Accepts every TCP connection on 127.0.0.1 and never sends a byte."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        for conn in self.accepted:
            conn.close()
        self.thread.join(timeout=5)


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_a_silent_server_fails_its_pair_within_the_client_bound(
    scheme: str, silent: SilentServer, tmp_path: Path, state: StateStore
) -> None:
    """A's server accepts and never answers: pair A fails within connect/read bound (+ the
    retry budget, a total), naming the masked URL; B's expired rows are deleted."""
    b_url = f"sqlite:///{tmp_path / 'b.db'}"
    seed(b_url)
    a_url = f"{scheme}://app:{SECRET}@127.0.0.1:{silent.port}/kids"
    config = write_config(
        tmp_path / "config", PRODUCT.replace("STATEMENT", str(STATEMENT)), CUSTOMERS
    )
    bus = EventBus()
    bus.subscribe(AuditTrail(state, lambda: NOW), required=True)
    budget = 1.0
    runner = build_runner(
        config,
        {"KIDS_A_URL": a_url, "KIDS_B_URL": b_url},
        bus,
        pepper=PEPPER,
        clock=lambda: NOW,
        retry=RetryPolicy(budget_seconds=budget),
    )
    started = time.monotonic()
    reports = {r.customer: r for r in run_pairs(runner, list(config.pairs()), NOW, dry_run=False)}
    elapsed = time.monotonic() - started

    timeouts = Timeouts(lock_seconds=LOCK, statement_seconds=STATEMENT)
    # One attempt at most read_seconds (libpq: connect_timeout, at least 2 s); the budget
    # may add a wait and one more attempt.
    attempt = max(read_seconds(timeouts), 2)
    assert elapsed < 2 * attempt + budget + 5
    a, b = reports["a"], reports["b"]
    assert a.outcome is Outcome.FAILED
    assert f"app:***@127.0.0.1:{silent.port}/kids" in (a.error or "")
    assert SECRET not in (a.error or "")
    assert "ConnectionTimeout" in (a.error or "") or "timed out" in (a.error or "")
    assert silent.accepted  # it did reach the listener: the client gave up, not the network
    assert b.outcome is Outcome.SUCCEEDED, b.error
    assert b.changed == 2
    assert ids(b_url) == [3]


def test_every_connection_gets_client_side_bounds_from_the_timeouts() -> None:
    """Connect, read and write bounds (and keepalives) derived from the lock and statement
    timeouts, per driver; what the URL sets itself wins."""
    import sqlalchemy as sa

    timeouts = Timeouts(lock_seconds=30, statement_seconds=600)
    assert connect_seconds(timeouts) == 10
    assert read_seconds(timeouts) == 600 + 30 + 5
    pg = client_options(sa.make_url("postgresql+psycopg://u@h/db"), timeouts)
    assert pg == {
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 635_000,
    }
    my = client_options(sa.make_url("mysql+pymysql://u@h/db?read_timeout=7"), timeouts)
    assert my == {"connect_timeout": 10, "write_timeout": 635}
    lite = client_options(sa.make_url("sqlite:///x.db"), Timeouts(lock_seconds=4))
    assert lite == {"timeout": 4}
