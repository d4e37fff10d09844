"""Write a configuration folder as Helm values for the chart's `config.files`.

    python deploy/scripts/config_values.py config/ > config.values.yaml
    helm install retention-worker helm/retention-worker -f config.values.yaml -f my.values.yaml

Reads catalogue.yaml, products/*.yaml and customers/*.yaml of the folder (UTF-8) and prints
YAML: `config: {files: {<path>: <text>}}`, each file's text kept as it is (comments too).
Exits 2 naming the folder when it holds no catalogue.yaml.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


class _Literal(str):
    """A string written as a YAML block scalar (|), so the files stay readable."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


def config_files(folder: Path) -> dict[str, str]:
    """{path relative to the folder: text} for the files the worker reads."""
    paths = [folder / "catalogue.yaml"]
    paths += sorted((folder / "products").glob("*.yaml"))
    paths += sorted((folder / "customers").glob("*.yaml"))
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8") for p in paths}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: config_values.py CONFIG_DIR > values.yaml", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    if not (folder / "catalogue.yaml").is_file():
        print(
            f"error: {folder} has no catalogue.yaml; name the configuration folder", file=sys.stderr
        )
        return 2
    dumper = yaml.SafeDumper
    dumper.add_representer(_Literal, _literal)
    files = {path: _Literal(text) for path, text in config_files(folder).items()}
    sys.stdout.write(
        yaml.dump(
            {"config": {"files": files}},
            Dumper=dumper,
            sort_keys=False,
            allow_unicode=True,
            width=1000,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
