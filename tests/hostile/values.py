"""Hostile values: dates, numbers, zeros, identifiers, settings, duplicates, tenants."""

from __future__ import annotations

import os
from pathlib import Path

from tests.hostile.base import BIG, CAT, FLEX, KDV, KON, VL, Case, both, quoted, replace


def dates() -> list[Case]:
    values = [
        ("2026-13-30", "month must be in 1..12"),
        ("2026-02-30", "day is out of range for month"),
        ("2025-02-29", "day is out of range for month"),
        ("2026-04-31", "day is out of range for month"),
        ("2026-00-10", "month must be in 1..12"),
        ("2026-06-00", "day is out of range for month"),
        ("0000-01-01", "year 0 is out of range"),
        ("9999-12-31", "outside the years 1900 to 2199"),
        ("1899-12-31", "outside the years 1900 to 2199"),
        ("2026-6-30", "not a date"),
        ("1790000000", "not a date"),
        ("2026-06-30T00:00:00Z", "not a date"),
        ("'30-06-2026'", "not a date"),
        ("[2026, 6, 30]", "not a date"),
    ]
    return [
        Case(
            f"date-{i}",
            "impossible date",
            f"config/{KDV}",
            why,
            replace(KDV, "end_of_service: 2026-06-30", f"end_of_service: {value}"),
        )
        for i, (value, why) in enumerate(values)
    ]


SETTING = "period: {setting: child_months, default: 24, unit: months}"


def numbers() -> list[Case]:
    flex = [
        ("period: 1m\n", f"period: {BIG}d\n", "more than 50 years"),
        ("period: 1m\n", f"period: {BIG}m\n", "more than 50 years"),
        ("period: 1m\n", f"period: {BIG}y\n", "more than 50 years"),
        ("period: 1m\n", f"period: {'9' * 5000}d\n", "more than 50 years"),
        ("period: 1m\n", "period: 18263d\n", "more than 50 years"),
        ("period: 1m\n", "period: 51y\n", "more than 50 years"),
        (
            SETTING,
            f"period: {{setting: child_months, default: {BIG}, unit: months}}",
            "more than 50 years",
        ),
        (
            SETTING,
            f"period: {{setting: child_months, default: 24, min: {BIG}}}",
            "more than 50 years",
        ),
        (
            SETTING,
            f"period: {{setting: child_months, default: 24, max: {BIG}}}",
            "more than 50 years",
        ),
        (
            SETTING,
            f"period: {{setting: child_months, default: -{BIG}}}",
            "would make data eligible",
        ),
        (SETTING, f"period: {{setting: child_months, default: {'9' * 5000}}}", "valid integer"),
        (
            "tenancy: {column: organisation_id}\n",
            f"tenancy: {{column: organisation_id}}\nbatch_size: {BIG}\n",
            "less than or equal to 50000",
        ),
        (
            "tenancy: {column: organisation_id}\n",
            "tenancy: {column: organisation_id}\nbatch_pause: 1.0e+308\n",
            "less than or equal to 60",
        ),
    ]
    cases = [
        Case(f"number-flex-{i}", "number too large", f"config/{FLEX}", why, replace(FLEX, old, new))
        for i, (old, new, why) in enumerate(flex)
    ]
    cases += [
        Case(
            "number-floor",
            "number too large",
            f"config/{CAT}",
            "more than 50 years",
            replace(CAT, "period: 7y", f"period: {BIG}y"),
        ),
        Case(
            "number-backup",
            "number too large",
            f"config/{CAT}",
            "more than 50 years",
            replace(
                CAT, "backup_retention: 14d\n\n  konnect", f"backup_retention: {BIG}d\n\n  konnect"
            ),
        ),
        Case(
            "number-setting",
            "number too large",
            f"config/{KDV}",
            "more than the maximum of 600",
            replace(KDV, "child_months: 36", f"child_months: {BIG}"),
        ),
        Case(
            "number-setting-negative",
            "number too large",
            f"config/{KDV}",
            "below the minimum of 1",
            replace(KDV, "child_months: 36", f"child_months: -{BIG}"),
        ),
        Case(
            "number-setting-konnect",
            "number too large",
            f"config/{KDV}",
            "more than the maximum of 600",
            replace(KDV, "settings: {months: 12}", f"settings: {{months: {BIG}}}"),
        ),
        Case(
            "number-setting-digits",
            "number too large",
            f"config/{KDV}",
            "valid integer",
            replace(KDV, "child_months: 36", f"child_months: {'9' * 5000}"),
        ),
        Case(
            "number-tenant",
            "number too large",
            f"config/{KDV}",
            "does not fit a 64-bit",
            replace(KDV, "tenant: 1042", f"tenant: {BIG}"),
        ),
    ]
    return cases


def zeros() -> list[Case]:
    flex = [
        ("period: 1m\n", "period: 0d\n"),
        ("period: 1m\n", "period: 0m\n"),
        ("period: 1m\n", "period: 0y\n"),
        (SETTING, "period: {setting: child_months, default: 0, unit: months}"),
        (SETTING, "period: {setting: child_months, default: 24, unit: months, min: 0}"),
        (SETTING, "period: {setting: child_months, default: 24, unit: months, max: 0}"),
    ]
    cases = [
        Case(
            f"zero-flex-{i}",
            "zero period or minimum",
            f"config/{FLEX}",
            "set at least 1",
            replace(FLEX, old, new),
        )
        for i, (old, new) in enumerate(flex)
    ]
    cases += [
        Case(
            "zero-konnect",
            "zero period or minimum",
            f"config/{KON}",
            "a period of 0 days",
            replace(KON, "period: 90d", "period: 0d"),
        ),
        Case(
            "zero-floor",
            "zero period or minimum",
            f"config/{CAT}",
            "set at least 1",
            replace(CAT, "period: 7y", "period: 0y"),
        ),
        Case(
            "zero-backup",
            "zero period or minimum",
            f"config/{CAT}",
            "set at least 1",
            replace(CAT, "backup_retention: 14d\n\n  konnect", "backup_retention: 0d\n\n  konnect"),
        ),
        Case(
            "zero-setting",
            "zero period or minimum",
            f"config/{KDV}",
            "below the minimum of 1",
            replace(KDV, "child_months: 36", "child_months: 0"),
        ),
        Case(
            "zero-setting-konnect",
            "zero period or minimum",
            f"config/{VL}",
            "below the minimum of 1",
            replace(VL, "settings: {months: 6}", "settings: {months: 0}"),
        ),
    ]
    return cases


HOSTILE_NAMES = [
    "x; DROP TABLE y",
    'x"; DROP TABLE y; --',
    "x' OR '1'='1",
    "x--",
    "x/*",
    "x y",
    "s.t",
    "1x",
    "naïve",
    "x\ny",
    "k" * 64,
    "",
]

IDENTIFIER_PLACES = [
    ("table", FLEX, "table: app_user", "table: {}"),
    (
        "key",
        FLEX,
        "    key: [id]\n    columns: {full_name",
        "    key: [{}]\n    columns: {full_name",
    ),
    ("column", FLEX, "full_name: name", "{}: name"),
    ("date-column", FLEX, "last_login: last_login_at", "last_login: {}"),
    ("tenant-column", FLEX, "tenancy: {column: organisation_id}", "tenancy: {column: {}}"),
    ("with-column", FLEX, 'health_notes: "null"', '{}: "null"'),
    ("references-own", FLEX, "{child_id: id}", "{{}: id}"),
    ("references-parent", FLEX, "child_id: id}", "child_id: {}}"),
    ("dependent-table", FLEX, "table: child_photo", "table: {}"),
    ("konnect-table", KON, "table: account", "table: {}"),
]


def identifiers() -> list[Case]:
    cases = []
    for place, file, old, template in IDENTIFIER_PLACES:
        for n, name in enumerate(HOSTILE_NAMES):
            new = template.replace("{}", quoted(name))
            # An empty key in `{"": id}` or `"": name` is still a name that is no identifier.
            cases.append(
                Case(
                    f"identifier-{place}-{n}",
                    "not a plain SQL identifier",
                    f"config/{file}",
                    "SQL identifier",
                    replace(file, old, new),
                )
            )
    return cases


def settings() -> list[Case]:
    values = [
        ("RETENTION_LOG_LEVEL", "LOUD"),
        ("RETENTION_LOG_LEVEL", "verbose"),
        ("RETENTION_LOG_LEVEL", "10"),
        ("RETENTION_LOG_FORMAT", "xml"),
        ("RETENTION_HTTP_PORT", "http"),
        ("RETENTION_HTTP_PORT", "70000"),
        ("RETENTION_HTTP_PORT", "9_464"),
        ("RETENTION_HTTP_PORT", BIG),
        ("RETENTION_STOP_GRACE_SECONDS", "0"),
        ("RETENTION_STOP_GRACE_SECONDS", "1.5"),
        ("RETENTION_HTTP_HOST", "a b"),
        ("RETENTION_STATE_URL", "not a url"),
    ]
    cases = [
        Case(
            f"setting-{name}-{i}",
            "bad RETENTION_* value",
            name,
            "; set ",
            lambda _d: None,
            {name: value},
        )
        for i, (name, value) in enumerate(values)
    ]

    def pepper_fifo(config_dir: Path) -> None:
        os.mkfifo(config_dir.parent / "pepper.fifo")

    cases.append(
        Case(
            "setting-pepper-fifo",
            "bad RETENTION_* value",
            "RETENTION_PEPPER_FILE",
            "not a regular file",
            pepper_fifo,
            {"RETENTION_PEPPER_FILE": "{tmp}/pepper.fifo"},
        )
    )
    return cases


def duplicates() -> list[Case]:
    edits = [
        (KDV, "tenant: 1042", "tenant: 1042\n    tenant: 2077"),
        (KDV, "  konnect:\n", "  flexkids: {tenant: 5}\n  konnect:\n"),
        (KDV, "customer: kdv-zonnestraal", "customer: kdv-zonnestraal\ncustomer: bso-de-vlinder"),
        (KDV, "timezone: Europe/Amsterdam", "timezone: Europe/Amsterdam\ntimezone: UTC"),
        (KDV, "settings: {months: 12}", "settings: {months: 12, months: 24}"),
        (KDV, "products:\n", "true: 1\nTrue: 2\nproducts:\n"),
        (KDV, "products:\n", "1: a\n+1: b\nproducts:\n"),
        (FLEX, "table: app_user", "table: app_user\n    table: parent"),
        (FLEX, "full_name: name,", "full_name: name, full_name: email,"),
        (FLEX, "subjects:\n", "subjects:\n  user: {kind: user, table: x, key: [id]}\n"),
        (CAT, "  name: {label: Naam}", "  name: {label: Naam, label: Name}"),
        (CAT, "  user: {label: Gebruiker}", "  user: {label: Gebruiker}\n  user: {label: User}"),
    ]
    return [
        Case(
            f"duplicate-{i}",
            "duplicate key",
            f"config/{file}",
            "appears a second time",
            replace(file, old, new),
        )
        for i, (file, old, new) in enumerate(edits)
    ]


def tenants() -> list[Case]:
    values = [
        ("true", "yes/no value"),
        ("false", "yes/no value"),
        ("yes", "yes/no value"),
        ("no", "yes/no value"),
        ("on", "yes/no value"),
        ("Off", "yes/no value"),
        ("1.5", "decimal number"),
        ("1042.0", "decimal number"),
        (".inf", "decimal number"),
        (".nan", "decimal number"),
        ("null", "the tenant is empty"),
        ("~", "the tenant is empty"),
        ("", "the tenant is empty"),
        ("''", "reads as an empty value"),
        ("'None'", "reads as an empty value"),
        ("' 1042'", "spaces around it"),
        ("'1042 '", "spaces around it"),
        ('"10\\u000042"', "control characters"),
        ("[1042]", "not a tenant value"),
        ("{id: 1042}", "not a tenant value"),
        ("-9223372036854775809", "does not fit a 64-bit"),
    ]
    return [
        Case(
            f"tenant-{i}",
            "tenant value",
            f"config/{KDV}",
            why,
            replace(KDV, "tenant: 1042", f"tenant: {value}"),
        )
        for i, (value, why) in enumerate(values)
    ]


def clashes() -> list[Case]:
    pairs = [
        ("1042", '"1042"'),
        ("1042", '"01042"'),
        ("1042", '"+1042"'),
        ("1042", '"1042.0"'),
        ("1042", '"1.042e3"'),
        ('"550e8400-e29b-41d4-a716-446655440000"', '"550E8400E29B41D4A716446655440000"'),
        ('"00000000000000000000000000000001"', "1"),
    ]
    return [
        Case(
            f"clash-{i}",
            "tenant two customers share",
            f"config/{VL}",
            "is also claimed by kdv-zonnestraal",
            both(
                replace(KDV, "tenant: 1042", f"tenant: {first}"),
                replace(VL, "tenant: 2077", f"tenant: {second}"),
            ),
        )
        for i, (first, second) in enumerate(pairs)
    ]
