"""Two customers' databases that are one database, however their URLs spell it.

With `tenancy: {per_customer: true}` a run has no tenant filter: it treats every row of the
customer's database as the customer's. Two customers whose URL variables name the same
database would each apply their own periods to the other's rows. Variables are compared by
name elsewhere (`worker.config.unique`); here their URLs are compared as the database would
see them, without connecting:

- the database kind, not the driver: `postgresql://` and `postgresql+psycopg://` are one;
- the host in lower case, with every spelling of this machine one host: `localhost`,
  `127.0.0.1` (any `127.x.y.z`), `::1`, `::ffff:127.0.0.1`, `0.0.0.0`, and a local socket
  (no host, or a `host=` / `unix_socket=` path in the query);
- the port, the kind's default (PostgreSQL 5432, MariaDB/MySQL 3306) when none is given;
- the database name: exactly on PostgreSQL, in lower case on MariaDB/MySQL (case-insensitive
  where `lower_case_table_names` is set; two names differing only in case are too close);
- a SQLite file by its resolved path (symbolic links followed, `..` removed).

User, password and query options (`sslmode`, `connect_timeout`, `charset`, …) do not change
which database it is. Two host names of one server (`db.internal` and `10.0.0.5`) cannot be
told apart without connecting: live `validate` also asks each server who it is
(`connectors.identity`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

import sqlalchemy as sa

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
LOOPBACK = "(this machine)"

Identity = tuple[str, ...]


def _host(host: str | None, query: Mapping[str, object]) -> str:
    socket = query.get("host") or query.get("unix_socket")
    if not host or socket:
        if isinstance(socket, str) and not socket.startswith("/"):
            return _host(socket, {})  # `?host=db.internal`: a TCP host in the query
        return LOOPBACK
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return LOOPBACK
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name
    local = address.is_loopback or address.is_unspecified  # 0.0.0.0 reaches this machine
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return LOOPBACK if local or (mapped is not None and mapped.is_loopback) else address.compressed


def url_identity(url: str) -> Identity | None:
    """Which database `url` names, as a comparable tuple; None for an in-memory SQLite
    database (always its own) or a URL that does not parse (reported elsewhere)."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return None
    kind = parsed.get_backend_name()
    if kind == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or path.startswith("file::memory:"):
            return None
        return (kind, os.path.realpath(path.removeprefix("file:").split("?")[0]))
    family = "mysql" if kind in ("mysql", "mariadb") else kind
    name = parsed.database or ""
    if family == "mysql":
        name = name.lower()
    port = parsed.port or DEFAULT_PORTS.get(kind, 0)
    return (family, _host(parsed.host, parsed.query), str(port), name)


def describe(identity: Identity) -> str:
    """An identity for messages: no user, no password, no query."""
    if identity[0] == "sqlite":
        return f"the SQLite file {identity[1]}"
    family, host, port, name = identity
    return f"database {name or '(default)'} on {host}:{port} ({family})"
