"""Configuration files that are no configuration: YAML, encodings, sizes, names; and a loader
that never raises.

Duplicate keys, aliases past the bound, deep nesting, tags, non-UTF-8 bytes, files over the
size limit, pipes and `.yml` names: each refused as one located problem, with what it sets
aside. Values inside well-formed files: test_config_input.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support import copy_config
from tests.support import edit_config as edit
from worker.config import checks as config_checks
from worker.config.load import load_config
from worker.config.yamlsafe import MAX_FILE_BYTES

KDV = "customers/kdv-zonnestraal.yaml"
VLINDER = "customers/bso-de-vlinder.yaml"
FLEXKIDS = "products/flexkids.yaml"
CATALOGUE = "catalogue.yaml"


def problems(config_dir: Path) -> list[str]:
    return [str(p) for p in load_config(config_dir).problems]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return copy_config(tmp_path)


# --- YAML ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "old", "new", "path"),
    [
        (KDV, "tenant: 1042", "tenant: 1042\n    tenant: 2077", "products.flexkids.tenant"),
        (KDV, "  konnect:\n", "  flexkids: {tenant: 5}\n  konnect:\n", "products.flexkids"),
        (
            KDV,
            "timezone: Europe/Amsterdam",
            "timezone: UTC\ntimezone: Europe/Amsterdam",
            "timezone",
        ),
        (FLEXKIDS, "table: app_user", "table: app_user\n    table: parent", "subjects.user.table"),
        (
            CATALOGUE,
            "  name: {label: Naam}",
            "  name: {label: Naam, label: Name}",
            "categories.name.label",
        ),
    ],
)
def test_a_duplicate_key_is_refused_at_its_second_occurrence(
    config_dir: Path, file: str, old: str, new: str, path: str
) -> None:
    """YAML would keep the last `tenant:` silently; the worker refuses it, at the second one."""
    edit(config_dir, file, old, new)
    [problem] = problems(config_dir)
    match = re.search(
        r"\(line (\d+)\): the key '(\w+)' appears a second time in this mapping "
        r"\(first at line (\d+)\)",
        problem,
    )
    assert problem.startswith(f"config/{file}: {path} (line "), problem
    assert match is not None, problem
    second, key, first = int(match[1]), match[2], int(match[3])
    lines = (config_dir / file).read_text(encoding="utf-8").splitlines()
    # Located at the second occurrence: after the first, or later on the same line.
    assert second > first or lines[second - 1].count(f"{key}:") == 2
    assert f"{key}:" in lines[second - 1]


def test_keys_equal_once_read_are_duplicates(config_dir: Path) -> None:
    """`1:` and `+1:`, `true:` and `True:` are one key once read: refused like any duplicate."""
    edit(config_dir, KDV, "products:\n", "1: a\n+1: b\nproducts:\n")
    [problem] = problems(config_dir)
    assert "appears a second time" in problem


def _laughs(levels: int, fan_out: int = 9) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * fan_out)}]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan_out)}]")
    return "\n".join(lines) + "\n"


def test_nine_levels_of_aliases_are_refused_without_expanding_them(config_dir: Path) -> None:
    """Billion laughs under one key of a product file: refused at the alias, in milliseconds."""
    flexkids = config_dir / FLEXKIDS
    flexkids.write_text(
        flexkids.read_text(encoding="utf-8") + "x_laughs:\n  " + _laughs(9).replace("\n", "\n  "),
        encoding="utf-8",
    )
    assert flexkids.stat().st_size < 5000
    config = load_config(config_dir)
    [problem] = [str(p) for p in config.problems]
    assert problem.startswith(f"config/{FLEXKIDS}: x_laughs.l")
    assert "expands to more than 50,000 values" in problem
    assert "konnect" in config.products


def test_ordinary_anchors_and_merge_keys_still_work(config_dir: Path) -> None:
    """A schedule reused with an alias, and settings completed by a merge key, load as written."""
    edit(
        config_dir,
        KDV,
        "    tenant: 1042\n",
        "    tenant: 1042\n    schedule: &nightly {cron: '0 3 * * *'}\n",
    )
    edit(
        config_dir,
        KDV,
        "    settings: {months: 12}\n",
        "    settings: {months: 12}\n    schedule: *nightly\n",
    )
    edit(
        config_dir,
        VLINDER,
        "settings: {child_months: 12,",
        "settings: {<<: {staff_months: 90, parent_months: 20}, child_months: 12,",
    )
    edit(config_dir, VLINDER, " staff_months: 96}", "}")
    config = load_config(config_dir)
    assert config.problems == ()
    kdv = config.customers["kdv-zonnestraal"].products
    assert kdv["flexkids"].schedule == kdv["konnect"].schedule
    assert kdv["konnect"].schedule is not None and kdv["konnect"].schedule.cron == "0 3 * * *"
    # The merged block fills in; a key written beside it wins.
    assert config.customers["bso-de-vlinder"].products["flexkids"].settings == {
        "child_months": 12,
        "parent_months": 18,
        "staff_months": 90,
    }


@pytest.mark.parametrize(
    ("text", "where", "why"),
    [
        ("a: " + "[" * 50 + "]" * 50 + "\n", "a.0.0.0", "nested more than 32 levels deep"),
        ("a: " + "[" * 200_000 + "\n", "a.0.0.0", "nested more than 32 levels deep"),
        ("a: &x [1, *x]\n", "a.1", "makes a loop"),
        ("a: !!int abc\n", "a", "the tag tag:yaml.org,2002:int is not used"),
        ("a: !!timestamp 2026-13-30\n", "a", "is not used in configuration files"),
        ("a: !!python/object:os.system x\n", "a", "is not used in configuration files"),
        ("? [a, b]\n: 1\n", "line 1, column 3", "a key must be a plain name"),
        ("a: 1\n---\nb: 2\n", "line 2, column 1", "expected a single document"),
        ("- a\n- b\n", "(top level)", "must hold a mapping"),
        ("", "(top level)", "must hold a mapping"),
        ("a: *nowhere\n", "line 1, column 4", "found undefined alias"),
        ("a: \x00\n", "line 1, column 4", "U+0000 is not allowed"),
    ],
)
def test_yaml_that_is_no_configuration_is_refused_at_its_place(
    config_dir: Path, text: str, where: str, why: str
) -> None:
    """Deep nesting, loops, tags, complex keys, several documents: one located problem each."""
    (config_dir / KDV).write_text(text, encoding="utf-8")
    config = load_config(config_dir)
    [problem] = [str(p) for p in config.problems]
    assert problem.startswith(f"config/{KDV}: {where}"), problem
    assert why in problem
    assert sorted(config.customers) == ["bso-de-vlinder"]


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ("customer: kdv-zonnestraal\n# caf\xe9\n".encode("latin-1"), "line 2, column 6"),
        ("customer: kdv".encode("utf-16"), "line 1, column 1"),
        (b"customer: \xed\xa0\x80\n", "line 1, column 11"),
        (b"customer: \xc0\xaf\n", "line 1, column 11"),
        (b"a: 1\nb: \x80\n", "line 2, column 4"),
    ],
)
def test_a_file_that_is_not_utf8_is_refused_with_its_line(
    config_dir: Path, raw: bytes, where: str
) -> None:
    """Latin-1, UTF-16, surrogates, overlong forms: refused at the first bad byte."""
    (config_dir / KDV).write_bytes(raw)
    [problem] = problems(config_dir)
    assert problem.startswith(f"config/{KDV}: {where}: the file is not UTF-8 text")
    assert "save it as UTF-8" in problem


def test_a_utf8_byte_order_mark_is_accepted(config_dir: Path) -> None:
    """A file saved by an editor that writes a BOM still loads."""
    kdv = config_dir / KDV
    kdv.write_bytes(b"\xef\xbb\xbf" + kdv.read_bytes())
    assert problems(config_dir) == []


def test_a_file_over_the_size_limit_is_refused_unread(config_dir: Path) -> None:
    """A product file over 512 KiB is refused as a whole; the other product still loads."""
    flexkids = config_dir / FLEXKIDS
    flexkids.write_text(flexkids.read_text() + "#" * MAX_FILE_BYTES + "\n", encoding="utf-8")
    config = load_config(config_dir)
    [problem] = [str(p) for p in config.problems]
    assert problem.startswith(f"config/{FLEXKIDS}: (whole file): the file is larger than 512 KiB")
    assert sorted(config.products) == ["konnect"]


def test_a_fifo_in_place_of_a_file_is_refused_without_blocking(config_dir: Path) -> None:
    """A named pipe called kdv-zonnestraal.yaml would block a read forever: it is refused."""
    kdv = config_dir / KDV
    kdv.unlink()
    os.mkfifo(kdv)
    [problem] = problems(config_dir)
    assert problem.startswith(f"config/{KDV}: (whole file): not a regular file")


@pytest.mark.parametrize(
    "name", ["customers/kdv-de-regenboog.yml", "customers/x.YAML", "products/parnassys.yml"]
)
def test_a_yml_file_is_reported_never_silently_ignored(config_dir: Path, name: str) -> None:
    """A `.yml` file in customers/ or products/ is refused with the rename that fixes it."""
    (config_dir / name).write_text("customer: kdv-de-regenboog\nproducts: {}\n", encoding="utf-8")
    [problem] = problems(config_dir)
    stem = Path(name).stem
    assert problem.startswith(f"config/{name}: (whole file): only files ending in .yaml are read")
    assert f"rename it to {stem}.yaml" in problem


def test_a_catalogue_yml_is_named(config_dir: Path) -> None:
    """catalogue.yml instead of catalogue.yaml: the message says to rename it."""
    (config_dir / CATALOGUE).rename(config_dir / "catalogue.yml")
    [problem] = problems(config_dir)
    assert problem == "config/catalogue.yml: (whole file): rename it to catalogue.yaml"


# --- the loader never raises ---------------------------------------------------------------


def test_a_fault_in_a_check_sets_aside_only_that_file(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a bug in the checks becomes a problem of the file being checked, never an exception."""
    real = config_checks.check_customer

    def broken(customer: object, doc: object, *args: object) -> None:
        if getattr(customer, "customer", "") == "kdv-zonnestraal":
            raise RecursionError("maximum recursion depth exceeded")
        real(customer, doc, *args)  # type: ignore[arg-type]

    monkeypatch.setattr("worker.config.load.check_customer", broken)
    config = load_config(config_dir)
    [problem] = [str(p) for p in config.problems]
    assert problem.startswith(f"config/{KDV}: (whole file): the worker could not check this file")
    assert "RecursionError" in problem
    assert sorted(config.customers) == ["bso-de-vlinder"]


def test_a_time_zone_that_names_a_folder_is_refused(config_dir: Path) -> None:
    """`timezone: Europe` is a folder of the zone database: refused, not an IsADirectoryError."""
    line = edit(config_dir, KDV, "timezone: Europe/Amsterdam", "timezone: Europe")
    [problem] = problems(config_dir)
    assert problem.startswith(f"config/{KDV}: timezone (line {line}): unknown time zone 'Europe'")
