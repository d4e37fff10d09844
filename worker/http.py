"""The daemon's HTTP endpoint: /metrics for Prometheus, /healthz and /readyz for probes.

A `ThreadingHTTPServer` in a daemon thread. The checks are callables passed in by the
daemon, so this module knows nothing of the scheduler or the state database:

- /healthz: 200 "ok" while `health()` is true (the process and its scheduler loop are alive).
- /readyz: 200 while `ready()` says so (configuration loaded, state database reachable),
  else 503 with the reason.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

import structlog

from worker.metrics import CONTENT_TYPE, Metrics

__all__ = ["HealthServer"]

_log = structlog.get_logger(__name__)
TEXT = "text/plain; charset=utf-8"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        metrics: Metrics,
        health: Callable[[], bool],
        ready: Callable[[], tuple[bool, str]],
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.ready = ready
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "retention-worker"
    sys_version = ""
    timeout = 10  # a stalled client must not hold a thread forever

    def do_GET(self) -> None:
        self._respond(body=True)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def _respond(self, *, body: bool) -> None:
        server = cast(_Server, self.server)
        path = urlsplit(self.path).path
        if path == "/metrics":
            status, content_type, payload = HTTPStatus.OK, CONTENT_TYPE, server.metrics.exposition()
        elif path == "/healthz":
            status, text = _check_health(server.health)
            content_type, payload = TEXT, text.encode()
        elif path == "/readyz":
            status, text = _check_ready(server.ready)
            content_type, payload = TEXT, text.encode()
        else:
            status, content_type, payload = HTTPStatus.NOT_FOUND, TEXT, b"not found\n"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("http.request", client=self.address_string(), message=format % args)


def _check_health(health: Callable[[], bool]) -> tuple[HTTPStatus, str]:
    try:
        alive = health()
    except Exception as exc:  # noqa: BLE001  (a failing check is an unhealthy answer)
        _log.warning("http.health_check_failed", error_type=type(exc).__name__, exc_info=exc)
        return HTTPStatus.SERVICE_UNAVAILABLE, "unhealthy: the health check failed\n"
    if alive:
        return HTTPStatus.OK, "ok\n"
    return HTTPStatus.SERVICE_UNAVAILABLE, "unhealthy\n"


def _check_ready(ready: Callable[[], tuple[bool, str]]) -> tuple[HTTPStatus, str]:
    try:
        ok, reason = ready()
    except Exception as exc:  # noqa: BLE001  (a failing check is a not-ready answer)
        _log.warning("http.ready_check_failed", error_type=type(exc).__name__, exc_info=exc)
        return HTTPStatus.SERVICE_UNAVAILABLE, "not ready: the readiness check failed\n"
    text = (reason or ("ready" if ok else "not ready")).rstrip("\n") + "\n"
    return (HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE), text


class HealthServer:
    """Serves /metrics, /healthz and /readyz on host:port from a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        health: Callable[[], bool],
        ready: Callable[[], tuple[bool, str]],
    ) -> None:
        self._host = host
        self._port = port
        self._metrics = metrics
        self._health = health
        self._ready = ready
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The port listened on: the ephemeral one chosen by the system when asked for 0."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._port

    def start(self) -> None:
        """Bind and serve in a daemon thread; raises OSError saying what to fix if busy."""
        if self._server is not None:
            return
        try:
            server = _Server((self._host, self._port), self._metrics, self._health, self._ready)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot listen on {self._host}:{self._port} ({exc.strerror}); "
                "set RETENTION_HTTP_PORT to a free port",
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how long stop() may wait for the loop to notice
            name="retention-http",
            daemon=True,
        )
        self._thread.start()
        _log.info("http.started", host=self._host, port=self.port)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        _log.info("http.stopped")

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
