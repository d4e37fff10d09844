"""The HTTP endpoint serves metrics and probe answers, and stops cleanly."""

from __future__ import annotations

import io
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import structlog

from worker.events import ConfigLoaded
from worker.http import HealthServer
from worker.logging import configure_logging
from worker.metrics import CONTENT_TYPE, Metrics


class Checks:
    """Probe answers a test can change while the server runs."""

    def __init__(self) -> None:
        self.alive = True
        self.ready_answer: tuple[bool, str] = (True, "ready")
        self.fail = False

    def health(self) -> bool:
        if self.fail:
            raise RuntimeError("postgresql://u:secret@db/x is gone")
        return self.alive

    def ready(self) -> tuple[bool, str]:
        if self.fail:
            raise RuntimeError("boom")
        return self.ready_answer


@pytest.fixture
def checks() -> Checks:
    return Checks()


@pytest.fixture
def server(checks: Checks) -> Iterator[HealthServer]:
    metrics = Metrics()
    metrics(ConfigLoaded(valid=True, problems=0))
    with HealthServer("127.0.0.1", 0, metrics, checks.health, checks.ready) as running:
        yield running


def get(server: HealthServer, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  (a local test URL)
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


def test_port_zero_picks_an_ephemeral_port(server: HealthServer) -> None:
    """Asked for port 0, the server listens on a real port and reports it."""
    assert server.port > 0


def test_metrics_serves_the_exposition(server: HealthServer) -> None:
    """/metrics answers 200 with the Prometheus content type and the registry's metrics."""
    status, content_type, body = get(server, "/metrics")
    assert status == 200
    assert content_type == CONTENT_TYPE
    assert b"retention_config_valid 1.0" in body


def test_healthz_follows_health(server: HealthServer, checks: Checks) -> None:
    """/healthz is 200 "ok" while health() is true and 503 when it is false."""
    assert get(server, "/healthz")[::2] == (200, b"ok\n")
    checks.alive = False
    assert get(server, "/healthz")[0] == 503


def test_readyz_follows_ready_with_reason(server: HealthServer, checks: Checks) -> None:
    """/readyz is 200 when ready() is true, else 503 with the reason as text."""
    assert get(server, "/readyz")[::2] == (200, b"ready\n")
    checks.ready_answer = (False, "the state database is not reachable")
    status, content_type, body = get(server, "/readyz")
    assert status == 503
    assert content_type.startswith("text/plain")
    assert body == b"the state database is not reachable\n"


def test_a_failing_check_is_a_503_without_its_message(server: HealthServer, checks: Checks) -> None:
    """A check that raises makes the probe 503; its text is not served and is masked in logs."""
    log = io.StringIO()
    root = logging.getLogger()
    level = root.level
    configure_logging("DEBUG", "json", log)
    try:
        checks.fail = True
        for path in ("/healthz", "/readyz"):
            status, _, body = get(server, path)
            assert status == 503
            assert b"secret" not in body
            assert b"boom" not in body
    finally:
        structlog.reset_defaults()
        for handler in [h for h in root.handlers if h.name == "retention-worker"]:
            root.removeHandler(handler)
        root.setLevel(level)
    events = [json.loads(line)["event"] for line in log.getvalue().splitlines()]
    assert "http.health_check_failed" in events
    assert "http.ready_check_failed" in events
    assert "postgresql://u:***@db/x" in log.getvalue()
    assert "secret" not in log.getvalue()


def test_query_strings_are_ignored_and_unknown_paths_404(server: HealthServer) -> None:
    """A query string does not change the path; any other path is 404."""
    assert get(server, "/healthz?verbose=1")[0] == 200
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/extra")[0] == 404


def test_head_answers_without_a_body(server: HealthServer) -> None:
    """HEAD answers with the status of GET and no body."""
    status, _, body = get(server, "/healthz", method="HEAD")
    assert (status, body) == (200, b"")


def test_access_log_is_quiet(server: HealthServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Requests write nothing to stderr (the access log goes through structlog at debug)."""
    get(server, "/healthz")
    get(server, "/nope")
    assert "GET /healthz" not in capsys.readouterr().err


def test_stop_frees_the_port_and_is_idempotent(checks: Checks) -> None:
    """After stop() nothing answers, a second stop() does nothing, and the port can be reused."""
    server = HealthServer("127.0.0.1", 0, Metrics(), checks.health, checks.ready)
    server.start()
    port = server.port
    assert get(server, "/healthz")[0] == 200
    server.stop()
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    with HealthServer("127.0.0.1", port, Metrics(), checks.health, checks.ready) as again:
        assert get(again, "/healthz")[0] == 200


def test_busy_port_says_what_to_fix(server: HealthServer, checks: Checks) -> None:
    """Starting on a port in use raises OSError naming RETENTION_HTTP_PORT."""
    clash = HealthServer("127.0.0.1", server.port, Metrics(), checks.health, checks.ready)
    with pytest.raises(OSError, match="RETENTION_HTTP_PORT"):
        clash.start()
