"""retention-worker: keeps the retention promises of the data processing agreement."""

__version__ = "0.1.0"
