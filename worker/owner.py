"""Which process runs a run, and whether that process is gone.

A run records its owner, `host|pid`: the host name and the process id. A later start settles a
run left open only when its owner is gone: on this host, no process has that id any more, or
the id is this process's own (a container restarted with the same host name and pid 1 is a new
process; the caller skips the runs this process has in progress); on another host (another
pod), when the run has shown no activity in the audit trail for `stale_after` seconds.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

STALE_AFTER_SECONDS = 1800.0
"""A run on another host with no audit record for this long is taken for crashed: longer than
any batch may take (a statement timeout of 600 s, twice, and the lock timeout)."""


def process_owner() -> str:
    """This process as a run's owner: `host|pid`."""
    return f"{socket.gethostname()}|{os.getpid()}"


def alive(pid: int) -> bool:
    """True while a process with id `pid` exists on this host (signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def abandoned(
    owner: str | None,
    last_activity: dt.datetime | None,
    now: dt.datetime,
    stale_after: float = STALE_AFTER_SECONDS,
) -> bool:
    """True when the run's owner is gone (see the module docstring).

    `owner` is the runs table's `host|pid` (None for runs recorded before 0005);
    `last_activity` the UTC time of the run's newest audit record; `now` UTC; `stale_after`
    in seconds.
    """
    stale = last_activity is None or (now - last_activity).total_seconds() > stale_after
    if not owner or owner.count("|") != 1:
        return stale  # recorded before owners were: judge by activity
    host, pid_text = owner.split("|")
    me_host, me_pid = process_owner().split("|")
    if host != me_host or not pid_text.isdigit():
        return stale
    pid = int(pid_text)
    if pid == int(me_pid):
        return True  # this process (its live runs are skipped by the caller) or a reused pid
    return not alive(pid)
