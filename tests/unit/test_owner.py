"""A run's owner: a second process settles a run only when the run's owner is gone."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys

from worker.owner import STALE_AFTER_SECONDS, abandoned, process_owner

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
HOST = socket.gethostname()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_owner_names_this_host_and_process() -> None:
    assert process_owner() == f"{HOST}|{os.getpid()}"


def test_a_live_process_on_this_host_keeps_its_run_however_quiet() -> None:
    parent = os.getppid()
    long_ago = NOW - dt.timedelta(days=3)
    assert not abandoned(f"{HOST}|{parent}", long_ago, NOW)


def test_a_process_gone_from_this_host_leaves_its_run_to_settle_at_once() -> None:
    assert abandoned(f"{HOST}|{_dead_pid()}", NOW, NOW)


def test_this_process_own_id_counts_as_gone_the_caller_skips_its_live_runs() -> None:
    # A container restarted with the same host name and pid 1 is another process.
    assert abandoned(process_owner(), NOW, NOW)


def test_a_run_on_another_host_is_judged_by_its_last_audit_record() -> None:
    other = "another-pod-7f9c|1"
    just_inside = NOW - dt.timedelta(seconds=STALE_AFTER_SECONDS)
    just_past = just_inside - dt.timedelta(seconds=1)
    assert not abandoned(other, just_inside, NOW)
    assert abandoned(other, just_past, NOW)
    assert abandoned(other, None, NOW)


def test_runs_from_before_owners_and_odd_owners_are_judged_by_activity() -> None:
    recent = NOW - dt.timedelta(minutes=1)
    old = NOW - dt.timedelta(hours=2)
    for owner in (None, "", "no-separator", "a|b|c", f"{HOST}|not-a-pid"):
        assert not abandoned(owner, recent, NOW), owner
        assert abandoned(owner, old, NOW), owner
