"""Connectors: narrow primitives over one product database. Policy stays in `worker`."""
