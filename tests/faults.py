"""Faults on the wire, for tests: a loopback TCP proxy that loses a COMMIT or its reply.

`CommitProxy` forwards a PostgreSQL connection byte for byte (use `sslmode=disable`, or the
bytes are encrypted). When armed, at the n-th COMMIT a client sends (a simple-query `Q`
message, as psycopg sends it), it either forwards the COMMIT and then cuts the connection
before the server's reply can come back (`lose="reply"`: the transaction is committed, the
client cannot know), or cuts it without forwarding (`lose="commit"`: the server rolls back).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

# A simple-query message (`Q`, its 4-byte length) whose whole text is COMMIT: not any message
# that merely holds the word (`BEGIN ISOLATION LEVEL READ COMMITTED`).
_COMMIT = re.compile(rb"Q[\x00-\xff]{4}\s*COMMIT\s*;?\s*\x00", re.IGNORECASE)


@dataclass
class CommitProxy:
    upstream: tuple[str, int]
    lose: str = "reply"  # reply | commit
    at_commit: int = 0  # 0: disarmed; n: the n-th COMMIT seen after arming
    commits: int = 0
    cut: int = 0
    _server: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.getsockname()[1])

    def arm(self, at_commit: int, lose: str = "reply") -> None:
        with self._lock:
            self.at_commit, self.lose, self.commits = at_commit, lose, 0

    def start(self) -> None:
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            cut = threading.Event()  # set: nothing more reaches the client (its reply is lost)
            for source, sink, from_client in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, from_client, cut), daemon=True
                ).start()

    def _should_cut(self, data: bytes) -> bool:
        if _COMMIT.search(data) is None:
            return False
        with self._lock:
            if not self.at_commit:
                return False
            self.commits += 1
            if self.commits != self.at_commit:
                return False
            self.at_commit = 0
            self.cut += 1
            return True

    def _pump(
        self, source: socket.socket, sink: socket.socket, from_client: bool, cut: threading.Event
    ) -> None:
        try:
            while data := source.recv(65536):
                if not from_client and cut.is_set():
                    break  # the server's reply to the COMMIT: lost
                if from_client and self._should_cut(data):
                    cut.set()  # before the COMMIT goes out: its reply never reaches the client
                    if self.lose == "reply":
                        sink.sendall(data)
                        time.sleep(0.3)  # let the server commit before the cut
                    _close(source, sink)
                    return
                sink.sendall(data)
        except OSError:
            pass
        _close(source, sink)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


@contextlib.contextmanager
def commit_proxy(host: str, port: int) -> Iterator[CommitProxy]:
    proxy = CommitProxy((host, port))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@contextlib.contextmanager
def on_the_wire(pg_url: str, *, migrate: bool = False) -> Iterator[tuple[CommitProxy, str]]:
    """The PostgreSQL database at `pg_url` behind a `CommitProxy`: the proxy and the URL
    through it (`sslmode=disable`); with `migrate`, migrated first as a state database.
    Unavailable without a host and port."""
    import sqlalchemy as sa

    from tests import dbs
    from worker.state import StateStore

    url = sa.make_url(pg_url)
    if url.host is None or url.port is None:
        dbs.unavailable("the commit proxy needs PostgreSQL on TCP (host and port)")
    if migrate:
        migrated = StateStore(pg_url)
        migrated.migrate()
        migrated.close()
    with commit_proxy(url.host, url.port) as found:
        through = url.set(host="127.0.0.1", port=found.port).update_query_dict(
            {"sslmode": "disable"}
        )
        yield found, through.render_as_string(hide_password=False)
