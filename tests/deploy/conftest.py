"""Fixtures of the deploy tests: the acceptance tests' daemon setup (real CLI, real PostgreSQL)."""

from tests.acceptance.conftest import config_dir, setup

__all__ = ["config_dir", "setup"]
