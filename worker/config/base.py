"""The base of every configuration model: frozen, unknown fields refused, text trimmed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A configuration model: immutable once read; a misspelt field is an error, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
