"""Bad configuration input is refused at its place, with the fix; the rest still loads.

Each test breaks one thing in a copy of the tests' configuration and loads it. The
assertions name the file, the path (with its line) and the words of the fix a user acts on,
and check that only what the broken file describes is set aside.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support import copy_config
from worker.config import checks as config_checks
from worker.config.load import load_config
from worker.config.yamlsafe import MAX_FILE_BYTES

KDV = "customers/kdv-zonnestraal.yaml"
VLINDER = "customers/bso-de-vlinder.yaml"
FLEXKIDS = "products/flexkids.yaml"
CATALOGUE = "catalogue.yaml"


def edit(config_dir: Path, relative: str, old: str, new: str) -> int:
    """Replace the one occurrence of `old` in a file of the copy; return its 1-based line."""
    file = config_dir / relative
    text = file.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {relative}"
    file.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def problems(config_dir: Path) -> list[str]:
    return [str(p) for p in load_config(config_dir).problems]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return copy_config(tmp_path)


# --- customer dates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("2026-13-30", "month must be in 1..12"),
        ("2026-02-30", "day is out of range for month"),
        ("2026-00-10", "month must be in 1..12"),
        ("0000-01-01", "year 0 is out of range"),
        ("9999-12-31", "outside the years 1900 to 2199"),
        ("2026-6-30", "is not a date; write it as YYYY-MM-DD"),
        ("1790000000", "is not a date; write it as YYYY-MM-DD"),
        ("2026-06-30T00:00:00", "is not a date; write it as YYYY-MM-DD"),
        ("'2026-06-30 '", "is not a date; write it as YYYY-MM-DD"),
    ],
)
def test_an_impossible_customer_date_is_refused_at_its_line(
    config_dir: Path, written: str, why: str
) -> None:
    """2026-13-30, 2026-02-30 and friends: refused at the date's line, the customer set aside."""
    line = edit(config_dir, KDV, "end_of_service: 2026-06-30", f"end_of_service: {written}")
    config = load_config(config_dir)
    [problem] = [str(p) for p in config.problems]
    assert problem.startswith(f"config/{KDV}: products.konnect.dates.end_of_service (line {line}):")
    assert why in problem
    assert "kdv-zonnestraal" not in config.customers
    assert "bso-de-vlinder" in config.customers


# --- tenant values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("true", "true is a yes/no value, not a tenant"),
        ("false", "false is a yes/no value, not a tenant"),
        ("yes", "true is a yes/no value"),
        ("on", "quote it if it is a word"),
        ("1042.0", "1042.0 is a decimal number"),
        ("1.5e+3", "is a decimal number"),
        ("null", "the tenant is empty"),
        ("~", "the tenant is empty"),
        ("''", "reads as an empty value"),
        ("'NULL'", "reads as an empty value"),
        ("' 1042'", "has spaces around it"),
        ("'1042 '", "has spaces around it"),
        ('"10\\t42"', "control characters"),
        ("9223372036854775808", "does not fit a 64-bit tenant column"),
        ("1000000000000000000000000000000", "does not fit a 64-bit tenant column"),
        ("[1042]", "is not a tenant value"),
        ("{id: 1042}", "is not a tenant value"),
        (f"'{'k' * 256}'", "at most 255"),
    ],
)
def test_a_tenant_that_is_not_one_whole_number_or_text_is_refused(
    config_dir: Path, written: str, why: str
) -> None:
    """true, decimals, null, padded text: refused, so no driver ever converts them (true = 1)."""
    line = edit(config_dir, KDV, "tenant: 1042", f"tenant: {written}")
    config = load_config(config_dir)
    [problem] = [str(p) for p in config.problems]
    assert problem.startswith(f"config/{KDV}: products.flexkids.tenant (line {line}):"), problem
    assert why in problem
    assert sorted(config.customers) == ["bso-de-vlinder"]


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("01042", "01042"),  # YAML 1.1 would read the octal number 546
        ("10:42", "10:42"),  # … the sexagesimal 642
        ("0x416", "0x416"),  # … the hexadecimal 1046
        ("1_042", "1_042"),  # … 1042
        ("'KDV-A'", "KDV-A"),
        ("-7", -7),
        ("2077", 2077),
    ],
)
def test_a_tenant_is_read_as_written_never_as_a_yaml_1_1_number(
    config_dir: Path, written: str, value: object
) -> None:
    """Only plain decimals are numbers; 01042 stays the text "01042", never the number 546."""
    edit(config_dir, KDV, "tenant: 1042", f"tenant: {written}")
    edit(config_dir, VLINDER, "tenant: 2077", "tenant: 99")
    config = load_config(config_dir)
    assert config.problems == ()
    tenant = config.customers["kdv-zonnestraal"].products["flexkids"].tenant
    assert (tenant, type(tenant)) == (value, type(value))


# --- periods and settings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "path", "why"),
    [
        ("period: 1m\n", "period: 1000000000000000000000000000000d\n", "period", "50 years"),
        ("period: 1m\n", f"period: {'9' * 5000}m\n", "period", "50 years"),
        ("period: 1m\n", "period: 18263d\n", "period", "more than 50 years"),
        ("period: 1m\n", "period: 0d\n", "period", "a period of 0 days"),
        ("period: 1m\n", "period: 0y\n", "period", "set at least 1"),
        ("period: 1m\n", "period: -1m\n", "period", "is not a period"),
        ("period: 1m\n", "period: 90\n", "period", "is not a period"),
        ("period: 1m\n", "period: true\n", "period", "is not a period"),
        (
            "period: {setting: child_months, default: 24, unit: months}",
            "period: {setting: child_months, default: 1000000000000000000000000000000, "
            "unit: months}",
            "period",
            "a default of 1000000000000000000000000000000 months is more than 50 years",
        ),
        (
            "period: {setting: child_months, default: 24, unit: months}",
            "period: {setting: child_months, default: 24, unit: months, "
            "max: 1000000000000000000000000000000}",
            "period",
            "a maximum of 1000000000000000000000000000000 months is more than 50 years",
        ),
        (
            "period: {setting: child_months, default: 24, unit: months}",
            "period: {setting: child_months, default: 24, unit: months, "
            "min: 1000000000000000000000000000000}",
            "period",
            "a minimum of 1000000000000000000000000000000 months is more than 50 years",
        ),
        (
            "period: {setting: child_months, default: 24, unit: months}",
            "period: {setting: child_months, default: 24, unit: months, min: 0}",
            "period",
            "a minimum of 0 months would make data eligible the day its time basis passes",
        ),
        (
            "period: {setting: child_months, default: 24, unit: months}",
            "period: {setting: child_months, default: 0, unit: months}",
            "period",
            "a default of 0 months",
        ),
        (
            "period: {setting: child_months, default: 24, unit: months}",
            "period: {setting: child_months, default: true, unit: months}",
            "period",
            "default: Input should be a valid integer",
        ),
    ],
)
def test_a_period_out_of_bounds_is_refused_in_the_mapping(
    config_dir: Path, old: str, new: str, path: str, why: str
) -> None:
    """Zero, negative, 10**30, five thousand digits: refused where written, product set aside."""
    line = edit(config_dir, FLEXKIDS, old, new)
    config = load_config(config_dir)
    found = [str(p) for p in config.problems]
    assert any(
        p.startswith(f"config/{FLEXKIDS}: rules.") and f"{path} (line {line})" in p and why in p
        for p in found
    ), found
    assert "flexkids" not in config.products
    assert "konnect" in config.products


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("1000000000000000000000000000000", "is more than the maximum of 600"),
        ("0", "is below the minimum of 1"),
        ("-3", "is below the minimum of 1"),
        ("36.0", "Input should be a valid integer"),
        ("'36'", "Input should be a valid integer"),
        ("true", "Input should be a valid integer"),
        ("0x24", "Input should be a valid integer"),
    ],
)
def test_a_customer_setting_out_of_bounds_is_refused(
    config_dir: Path, value: str, why: str
) -> None:
    """A customer's period of 10**30 months, zero, text or a boolean is refused at its line."""
    line = edit(config_dir, KDV, "child_months: 36", f"child_months: {value}")
    [problem] = problems(config_dir)
    assert problem.startswith(
        f"config/{KDV}: products.flexkids.settings.child_months (line {line})"
    )
    assert why in problem


def test_the_catalogue_refuses_a_floor_of_zero_or_of_ten_to_the_thirty(config_dir: Path) -> None:
    """A legal floor is a period like any other: 0y and 10**30y are refused in catalogue.yaml."""
    edit(config_dir, CATALOGUE, "period: 7y", "period: 0y")
    [problem] = problems(config_dir)
    assert problem.startswith(f"config/{CATALOGUE}: floors.fiscal.period (line ")
    assert "set at least 1" in problem


# --- identifiers -------------------------------------------------------------------------

HOSTILE_NAMES = [
    "x; DROP TABLE y",
    'x"; DROP TABLE y; --',
    "x' OR '1'='1",
    "x--",
    "x y",
    "s.t",
    "1x",
    "naïve",
    "x\\ny",
    "k" * 64,
]

# (file, text to replace, with {name} where the hostile name goes, path of the problem)
IDENTIFIER_PLACES = [
    (FLEXKIDS, "table: app_user", "table: {name}", "subjects.user.table"),
    (
        FLEXKIDS,
        "    key: [id]\n    columns: {full_name",
        "    key: [{name}]\n    columns: {full_name",
        "subjects.user.key.0",
    ),
    (FLEXKIDS, "full_name: name", "{name}: name", "subjects.user.columns."),
    (FLEXKIDS, "last_login: last_login_at", "last_login: {name}", "subjects.user.dates.last_login"),
    (FLEXKIDS, "tenancy: {column: organisation_id}", "tenancy: {column: {name}}", "tenancy.column"),
    (
        FLEXKIDS,
        "child_id: id}",
        "child_id: {name}}",
        "subjects.child.dependents.0.references.child_id",
    ),
    (FLEXKIDS, "{child_id: id}", "{{name}: id}", "subjects.child.dependents.0.references."),
    (FLEXKIDS, "table: child_photo", "table: {name}", "subjects.child.dependents.0.table"),
    (FLEXKIDS, 'health_notes: "null"', '{name}: "null"', "rules.2.stages.0.with."),
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize(("file", "old", "new", "path"), IDENTIFIER_PLACES)
def test_a_name_that_is_not_a_plain_sql_identifier_is_refused_offline(
    config_dir: Path, file: str, old: str, new: str, path: str, name: str
) -> None:
    """`x; DROP TABLE y` as a table, key, column, date, tenant, with or reference: refused."""
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    line = edit(config_dir, file, old, new.replace("{name}", quoted))
    config = load_config(config_dir)
    found = [str(p) for p in config.problems]
    assert any(
        p.startswith(f"config/{file}: {path}") and f"(line {line}" in p and "SQL identifier" in p
        for p in found
    ), found
    assert "flexkids" not in config.products


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
