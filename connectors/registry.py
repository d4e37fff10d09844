"""Connector names (as a product mapping's `connector:` field) → classes."""

from __future__ import annotations

from connectors.base import Connector, Timeouts
from connectors.engines import Engines
from connectors.sql import SqlConnector

CONNECTORS: dict[str, type[Connector]] = {"sql": SqlConnector}


def connector_class(name: str) -> type[Connector]:
    try:
        return CONNECTORS[name]
    except KeyError:
        known = ", ".join(sorted(CONNECTORS))
        raise ValueError(f"unknown connector {name!r}; use one of {known}") from None


def make_connector(
    name: str,
    url: str,
    *,
    pepper: bytes,
    timeouts: Timeouts | None = None,
    engines: Engines | None = None,
) -> Connector:
    """A connector for `url` whose sessions run under `timeouts` (default: `Timeouts()`),
    sharing engines and reflected schemas through `engines` when given (see
    `connectors.engines`); the SQL connector is the only URL-driven one so far. Raises
    ValueError for an unknown or not URL-driven connector name."""
    cls = connector_class(name)
    if cls is not SqlConnector:
        raise ValueError(f"connector {name!r} cannot be built from a URL")
    return SqlConnector(url, pepper=pepper, timeouts=timeouts, engines=engines)
