"""Old import path of `worker.config.files` (reading one file, locating its problems)."""

from worker.config.files import Doc, Problems, line_of, parse_model, read_yaml

__all__ = ["Doc", "Problems", "line_of", "parse_model", "read_yaml"]
