"""A hostile file cannot make problem reporting slow or its output unbounded.

Locating a problem's line is a dictionary look-up per path step once a mapping's keys are
indexed (not a scan of its keys per problem), and at most MAX_PROBLEMS_PER_FILE problems are
kept and printed per file, then one "… and N more". Checked by work done and output size,
never by wall time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from tests.support import copy_config
from worker.cli import main
from worker.config.files import MAX_PROBLEMS_PER_FILE, Doc, Problems
from worker.config.load import load_config

KDV = "customers/kdv-zonnestraal.yaml"
KEYS = 4_000
FIELDS = 2_000


class CountingPairs(list[Any]):
    """A mapping node's (key, value) pairs that count how many pairs are read."""

    read = 0

    def __iter__(self) -> Any:
        for pair in super().__iter__():
            CountingPairs.read += 1
            yield pair


def test_locating_every_key_of_a_large_mapping_reads_its_keys_once() -> None:
    """4 000 keys, each located: at most 4 000 pairs read in all (a scan per key: 8 million)."""
    text = "".join(f"key_{n}: {n}\n" for n in range(KEYS))
    node = yaml.compose(text)
    assert isinstance(node, yaml.MappingNode)
    node.value = CountingPairs(node.value)
    CountingPairs.read = 0
    doc = Doc(Path("big.yaml"), {}, node)
    lines = [doc.line_of((f"key_{n}",)) for n in range(KEYS)]
    assert lines == list(range(1, KEYS + 1))
    assert doc.line_of(("missing",)) == 1  # the nearest place that exists: the mapping
    assert CountingPairs.read <= KEYS


def test_problems_past_the_cap_become_one_line_that_counts_the_rest(tmp_path: Path) -> None:
    """120 problems in one file keep the first 50 and one "… and 70 more"; another file's
    problems have their own cap."""
    problems = Problems(tmp_path)
    for n in range(120):
        problems.add(tmp_path / "customers" / "a.yaml", f"key_{n}", "unknown field")
    problems.add(tmp_path / "customers" / "b.yaml", "timezone", "unknown")
    shown = [str(p) for p in problems.items]
    assert len(shown) == MAX_PROBLEMS_PER_FILE + 2
    assert shown[MAX_PROBLEMS_PER_FILE - 1].endswith("key_49: unknown field")
    assert "… and 70 more problem(s) in this file" in shown[MAX_PROBLEMS_PER_FILE]
    assert shown[-1].endswith("b.yaml: timezone: unknown")


def test_a_customer_file_of_thousands_of_unknown_fields_prints_a_bounded_report(
    tmp_path: Path,
) -> None:
    """A customer file with 2 000 unknown fields: validate --offline exits 2 with the first
    50, one line for the rest, and a report of bounded size; the other customers load."""
    config_dir = copy_config(tmp_path)
    file = config_dir / KDV
    file.write_text(
        file.read_text(encoding="utf-8") + "".join(f"x{n}: 1\n" for n in range(FIELDS)),
        encoding="utf-8",
    )
    config = load_config(config_dir)
    mine = [p for p in config.problems if p.file.endswith(KDV)]
    assert len(mine) == MAX_PROBLEMS_PER_FILE + 1
    assert f"and {FIELDS - MAX_PROBLEMS_PER_FILE} more" in mine[-1].message
    assert "kdv-zonnestraal" not in config.customers
    assert config.customers  # the others still load
    result = CliRunner().invoke(main, ["validate", "--offline", "--config", str(config_dir)])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert len(result.output.splitlines()) <= MAX_PROBLEMS_PER_FILE + 5
    assert len(result.output) < 20_000
