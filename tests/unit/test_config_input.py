"""Bad values in configuration files are refused at their place, with the fix; the rest loads.

Dates, tenant values, periods and settings, SQL identifiers. Each test breaks one thing in a
copy of the tests' configuration and loads it; the assertions name the file, the path (with
its line) and the words of the fix, and check that only what the broken file describes is set
aside. The YAML and the files themselves: test_config_files.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import copy_config
from tests.support import edit_config as edit
from worker.config.load import load_config

KDV = "customers/kdv-zonnestraal.yaml"
VLINDER = "customers/bso-de-vlinder.yaml"
FLEXKIDS = "products/flexkids.yaml"
CATALOGUE = "catalogue.yaml"


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
