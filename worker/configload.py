"""Old import path of `worker.config.load`: `from worker.configload import load_config`."""

from worker.config.load import Config, load_config

__all__ = ["Config", "load_config"]
