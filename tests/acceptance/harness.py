"""Drive the real `retention-worker` CLI as a subprocess: logs, HTTP probes, signals.

Plain helpers for the acceptance tests (the fixtures live in conftest.py). Nothing here
sleeps for a deadline: every wait polls a condition with small sleeps and a bounded timeout.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from tests.support import RUN_DIR

T = TypeVar("T")
POLL = 0.05

LogLine = dict[str, Any]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call `check` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL)


def cli(
    args: list[str], env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m worker ARGS` to completion in `RUN_DIR` (where no config/ is)."""
    return subprocess.run(
        worker_argv(*args),
        cwd=RUN_DIR,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class _Reader(threading.Thread):
    """Collects the lines of one pipe as they come, so the child never blocks on it."""

    def __init__(self, stream: Any, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        for raw in self.stream:
            with self.lock:
                self.lines.append(raw.rstrip("\n"))
        self.stream.close()

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.lines)


def worker_argv(*args: str) -> list[str]:
    """The command line of `retention-worker ARGS` with this interpreter."""
    return [sys.executable, "-m", "worker", *args]


class Worker:
    """A running process (the worker, or make running it), its output read in the background."""

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        port: int,
        *,
        cwd: Path = RUN_DIR,
        new_session: bool = False,
    ) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=new_session,
        )
        self._err = _Reader(self.proc.stderr, "worker-stderr")
        self._out = _Reader(self.proc.stdout, "worker-stdout")
        self._err.start()
        self._out.start()

    # --- output ------------------------------------------------------------------------

    @property
    def stderr_lines(self) -> list[str]:
        return self._err.snapshot()

    @property
    def stdout_lines(self) -> list[str]:
        return self._out.snapshot()

    def logs(self) -> list[LogLine]:
        """Every stderr line that parses as a JSON object (the others are left out)."""
        found = []
        for line in self.stderr_lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
        return found

    def events(self, name: str, **fields: Any) -> list[LogLine]:
        """Log lines with event `name` whose fields equal `fields`."""
        return [
            line
            for line in self.logs()
            if line.get("event") == name and all(line.get(k) == v for k, v in fields.items())
        ]

    def wait_event(self, name: str, timeout: float = 30, **fields: Any) -> LogLine:
        """Wait for the first log line with event `name` (and `fields`); fail if it exits."""

        def found() -> LogLine | None:
            hits = self.events(name, **fields)
            if hits:
                return hits[0]
            self._alive(f"waiting for {name} {fields}")
            return None

        return poll(found, timeout, f"a {name} log line with {fields}\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        return "last stderr lines:\n" + "\n".join(self.stderr_lines[-n:])

    def _alive(self, doing: str) -> None:
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"the worker exited with {code} while {doing}\n{self.tail()}")

    # --- HTTP --------------------------------------------------------------------------

    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of GET http://127.0.0.1:port/path; (0, reason) when unreachable."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            return 0, str(exc)

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample on /metrics as (name, labels, value); empty if it does not answer."""
        status, body = self.get("/metrics")
        if status != 200:
            return []
        return [
            (s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(body)
            for s in family.samples
        ]

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of sample `name` with exactly these labels (a subset match), or None."""
        for sample, have, value in self.samples():
            if sample == name and all(have.get(k) == v for k, v in labels.items()):
                return value
        return None

    def wait_metric(
        self, name: str, check: Callable[[float], bool], timeout: float = 30, **labels: str
    ) -> float:
        def found() -> tuple[float] | None:
            self._alive(f"waiting for {name}")
            value = self.metric(name, **labels)
            return (value,) if value is not None and check(value) else None

        return poll(found, timeout, f"{name}{labels} on /metrics\n{self.tail()}")[0]

    # --- lifetime ----------------------------------------------------------------------

    def send(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (fails if it takes longer than `timeout` s)."""
        self.send(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the worker did not exit within {timeout:.0f}s\n{self.tail()}"
            ) from None
        self._err.join(timeout=5)
        self._out.join(timeout=5)
        return code

    def kill(self) -> None:
        """Make sure the process is gone (teardown); a no-op once it has exited."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def json_problems(lines: Iterable[str]) -> list[str]:
    """Why lines of the log fall short: not JSON, or a run line missing its context."""
    problems = []
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except ValueError:
            problems.append(f"line {number} is not JSON: {line[:200]}")
            continue
        if not isinstance(value, dict) or not isinstance(value.get("event"), str):
            problems.append(f"line {number} has no event: {line[:200]}")
            continue
        if "run_id" in value:
            missing = [k for k in ("customer", "product", "run_id") if not value.get(k)]
            if missing:
                problems.append(f"line {number} lacks {missing}: {line[:200]}")
    return problems


def copy_tree(files: Iterable[str], source: Path, target: Path) -> None:
    """Copy the named files (relative to `source`) to `target`, keeping modes and times."""
    for name in files:
        src = source / name
        if not src.is_file():  # deleted in the working tree but still in the index
            continue
        dst = target / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def pid_children(pid: int) -> list[int]:
    """Direct children of process `pid`, from /proc (Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def env_without(env: Mapping[str, str], prefixes: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(prefixes)}


__all__ = [
    "Worker",
    "cli",
    "copy_tree",
    "env_without",
    "free_port",
    "json_problems",
    "pid_children",
    "poll",
    "worker_argv",
]
