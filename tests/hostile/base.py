"""The shape of a hostile case, and the edits that make one from the tests' configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KDV = "customers/kdv-zonnestraal.yaml"
VL = "customers/bso-de-vlinder.yaml"
FLEX = "products/flexkids.yaml"
KON = "products/konnect.yaml"
CAT = "catalogue.yaml"
BIG = "1" + "0" * 30  # 10**30

Apply = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """One hostile input: what to do to the configuration, and where it must be reported."""

    id: str
    kind: str
    where: str  # "config/<file>" as validate prints it, or a RETENTION_* variable
    expect: str  # a phrase of the message
    apply: Apply = field(repr=False)
    env: dict[str, str] = field(default_factory=dict)


def replace(file: str, old: str, new: str) -> Apply:
    def apply(config_dir: Path) -> None:
        path = config_dir / file
        text = path.read_text(encoding="utf-8")
        if text.count(old) != 1:
            raise AssertionError(f"{old!r} must occur exactly once in {file}")
        path.write_text(text.replace(old, new), encoding="utf-8")

    return apply


def append(file: str, text: str) -> Apply:
    def apply(config_dir: Path) -> None:
        path = config_dir / file
        path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")

    return apply


def prepend(file: str, text: str) -> Apply:
    def apply(config_dir: Path) -> None:
        path = config_dir / file
        path.write_text(text + path.read_text(encoding="utf-8"), encoding="utf-8")

    return apply


def write(file: str, data: bytes | Callable[[bytes], bytes]) -> Apply:
    def apply(config_dir: Path) -> None:
        path = config_dir / file
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_bytes() if path.is_file() else b""
        path.write_bytes(data(old) if callable(data) else data)

    return apply


def both(*steps: Apply) -> Apply:
    def apply(config_dir: Path) -> None:
        for step in steps:
            step(config_dir)

    return apply


def quoted(text: str) -> str:
    return json.dumps(text)  # a YAML double-quoted scalar
