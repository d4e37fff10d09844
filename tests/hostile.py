"""A corpus of hostile configuration input, generated from the tests' own configuration.

Each `Case` breaks one thing in a copy of tests/fixtures/config (or sets one bad RETENTION_*
variable) and says where the problem must be reported (`where`: the file as `validate`
shows it, or the variable) and a phrase of its message (`expect`). Every kind of bad input
of issue 6 points 1 and 6 is here: impossible dates, non-UTF-8 bytes, alias expansion, deep
nesting, files over the size limit, numbers too large for a period, zero periods and
minimums, names that are not plain SQL identifiers, bad settings, `.yml` files, duplicate
keys, tenant values that are not one whole number or text, and tenants two customers share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from worker.config.yamlsafe import MAX_FILE_BYTES

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


def _replace(file: str, old: str, new: str) -> Apply:
    def apply(config_dir: Path) -> None:
        path = config_dir / file
        text = path.read_text(encoding="utf-8")
        if text.count(old) != 1:
            raise AssertionError(f"{old!r} must occur exactly once in {file}")
        path.write_text(text.replace(old, new), encoding="utf-8")

    return apply


def _append(file: str, text: str) -> Apply:
    def apply(config_dir: Path) -> None:
        path = config_dir / file
        path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")

    return apply


def _prepend(file: str, text: str) -> Apply:
    def apply(config_dir: Path) -> None:
        path = config_dir / file
        path.write_text(text + path.read_text(encoding="utf-8"), encoding="utf-8")

    return apply


def _write(file: str, data: bytes | Callable[[bytes], bytes]) -> Apply:
    def apply(config_dir: Path) -> None:
        path = config_dir / file
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_bytes() if path.is_file() else b""
        path.write_bytes(data(old) if callable(data) else data)

    return apply


def _both(*steps: Apply) -> Apply:
    def apply(config_dir: Path) -> None:
        for step in steps:
            step(config_dir)

    return apply


def _quoted(text: str) -> str:
    return json.dumps(text)  # a YAML double-quoted scalar


def _dates() -> list[Case]:
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
            _replace(KDV, "end_of_service: 2026-06-30", f"end_of_service: {value}"),
        )
        for i, (value, why) in enumerate(values)
    ]


def _encodings() -> list[Case]:
    payloads: list[tuple[str, Callable[[bytes], bytes]]] = [
        ("latin1-comment", lambda b: b + "# caf\xe9\n".encode("latin-1")),
        ("latin1-value", lambda b: b.replace(b": ", b": Z\xfc", 1)),
        ("utf16-le", lambda b: b.decode("utf-8").encode("utf-16")),
        ("utf16-be", lambda b: b.decode("utf-8").encode("utf-16-be")),
        ("continuation", lambda b: b + b"x: \x80\n"),
        ("overlong", lambda b: b + b"x: \xc0\xaf\n"),
        ("surrogate", lambda b: b + b"x: \xed\xa0\x80\n"),
        ("truncated", lambda b: b + b"x: \xe2\x82"),
        ("ff-fe", lambda b: b"\xff\xfe" + b),
        ("cp1252-quote", lambda b: b + b"x: \x93quoted\x94\n"),
    ]
    return [
        Case(
            f"encoding-{name}-{Path(file).stem}",
            "non-UTF-8 bytes",
            f"config/{file}",
            "not UTF-8 text" if name != "utf16-be" else "is not allowed in YAML",
            _write(file, change),
        )
        for file in (KDV, FLEX, CAT)
        for name, change in payloads
    ]


def _laughs(levels: int, fan_out: int, indent: str = "") -> str:
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * fan_out)}]"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * fan_out)
        lines.append(f"{indent}l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _aliases() -> list[Case]:
    cases = []
    for file in (FLEX, KDV, CAT, KON):
        for levels, fan_out in ((5, 9), (6, 9), (9, 9), (12, 9), (17, 2), (30, 2)):
            # 30 levels also cross the nesting bound: either refusal is right.
            expect = "than" if levels > 28 else "expands to more than 50,000 values"
            cases.append(
                Case(
                    f"laughs-{levels}x{fan_out}-{Path(file).stem}",
                    "alias expansion",
                    f"config/{file}",
                    expect,
                    _append(file, "x_laughs:\n" + _laughs(levels, fan_out, "  ")),
                )
            )
    # The case: anchors nine deep in a 1.7 KB file, the last one used where a list of
    # names is validated (each refused item's repr would spell out billions of values).
    for file, old, new in (
        (FLEX, "    key: [id]\n    columns: {full_name", "    key: *l9\n    columns: {full_name"),
        (KDV, "tenant: 1042", "tenant: *l9"),
        (CAT, "applies_to: [bank, contract]", "applies_to: *l9"),
    ):
        cases.append(
            Case(
                f"laughs-used-{Path(file).stem}",
                "alias expansion",
                f"config/{file}",
                "expands to more than 50,000 values",
                _both(
                    _prepend(file, "x_anchors:\n" + _laughs(9, 9, "  ")), _replace(file, old, new)
                ),
            )
        )
    merge = "".join(
        f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: {i}}}\n" if i else "m0: &m0 {k: 0}\n"
        for i in range(25)
    )
    long_text = "s: &s " + "x" * 200_000 + "\n" + "t: [" + ", ".join(["*s"] * 12) + "]\n"
    cases += [
        Case(
            "merge-bomb",
            "alias expansion",
            f"config/{KDV}",
            "expands to more than",
            _append(KDV, merge),
        ),
        Case(
            "long-text-aliases",
            "alias expansion",
            f"config/{KDV}",
            "2,097,152 characters",
            _append(KDV, long_text),
        ),
        Case(
            "alias-loop-list",
            "alias expansion",
            f"config/{KDV}",
            "makes a loop",
            _append(KDV, "x: &x [1, *x]\n"),
        ),
        Case(
            "alias-loop-map",
            "alias expansion",
            f"config/{FLEX}",
            "makes a loop",
            _append(FLEX, "x: &x {a: *x}\n"),
        ),
    ]
    return cases


def _nesting() -> list[Case]:
    shapes = {
        "brackets-33": "x: " + "[" * 33 + "]" * 33 + "\n",
        "brackets-100k": "x: " + "[" * 100_000 + "\n",
        "braces-40": "x: " + "{a: " * 40 + "1" + "}" * 40 + "\n",
        "braces-10k": "x: " + "{a: " * 10_000 + "\n",
        "block-40": "x:\n"
        + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(40))
        + "  " * 41
        + "v\n",
        "dashes-40": "x:\n"
        + "".join("  " * (i + 1) + "-\n" for i in range(40))
        + "  " * 41
        + "v\n",
        "alias-depth": "a: &a " + "[" * 20 + "]" * 20 + "\nb: " + "[" * 20 + "*a" + "]" * 20 + "\n",
    }
    return [
        Case(
            f"nesting-{name}-{Path(file).stem}",
            "deep nesting",
            f"config/{file}",
            "levels deep",
            _append(file, text),
        )
        for file in (KDV, FLEX)
        for name, text in shapes.items()
    ]


def _sizes() -> list[Case]:
    over = MAX_FILE_BYTES + 1
    shapes = {
        "comment": lambda b: b + b"#" * over,
        "scalar": lambda b: b + b"x: " + b"y" * over + b"\n",
        "keys": lambda b: b + b"".join(b"k%d: 1\n" % i for i in range(over // 6)),
    }
    return [
        Case(
            f"size-{name}-{Path(file).stem}",
            "file over the size limit",
            f"config/{file}",
            "larger than 512 KiB",
            _write(file, change),
        )
        for file in (KDV, FLEX, CAT)
        for name, change in shapes.items()
    ]


SETTING = "period: {setting: child_months, default: 24, unit: months}"


def _numbers() -> list[Case]:
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
        Case(
            f"number-flex-{i}", "number too large", f"config/{FLEX}", why, _replace(FLEX, old, new)
        )
        for i, (old, new, why) in enumerate(flex)
    ]
    cases += [
        Case(
            "number-floor",
            "number too large",
            f"config/{CAT}",
            "more than 50 years",
            _replace(CAT, "period: 7y", f"period: {BIG}y"),
        ),
        Case(
            "number-backup",
            "number too large",
            f"config/{CAT}",
            "more than 50 years",
            _replace(
                CAT, "backup_retention: 14d\n\n  konnect", f"backup_retention: {BIG}d\n\n  konnect"
            ),
        ),
        Case(
            "number-setting",
            "number too large",
            f"config/{KDV}",
            "more than the maximum of 600",
            _replace(KDV, "child_months: 36", f"child_months: {BIG}"),
        ),
        Case(
            "number-setting-negative",
            "number too large",
            f"config/{KDV}",
            "below the minimum of 1",
            _replace(KDV, "child_months: 36", f"child_months: -{BIG}"),
        ),
        Case(
            "number-setting-konnect",
            "number too large",
            f"config/{KDV}",
            "more than the maximum of 600",
            _replace(KDV, "settings: {months: 12}", f"settings: {{months: {BIG}}}"),
        ),
        Case(
            "number-setting-digits",
            "number too large",
            f"config/{KDV}",
            "valid integer",
            _replace(KDV, "child_months: 36", f"child_months: {'9' * 5000}"),
        ),
        Case(
            "number-tenant",
            "number too large",
            f"config/{KDV}",
            "does not fit a 64-bit",
            _replace(KDV, "tenant: 1042", f"tenant: {BIG}"),
        ),
    ]
    return cases


def _zeros() -> list[Case]:
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
            _replace(FLEX, old, new),
        )
        for i, (old, new) in enumerate(flex)
    ]
    cases += [
        Case(
            "zero-konnect",
            "zero period or minimum",
            f"config/{KON}",
            "a period of 0 days",
            _replace(KON, "period: 90d", "period: 0d"),
        ),
        Case(
            "zero-floor",
            "zero period or minimum",
            f"config/{CAT}",
            "set at least 1",
            _replace(CAT, "period: 7y", "period: 0y"),
        ),
        Case(
            "zero-backup",
            "zero period or minimum",
            f"config/{CAT}",
            "set at least 1",
            _replace(
                CAT, "backup_retention: 14d\n\n  konnect", "backup_retention: 0d\n\n  konnect"
            ),
        ),
        Case(
            "zero-setting",
            "zero period or minimum",
            f"config/{KDV}",
            "below the minimum of 1",
            _replace(KDV, "child_months: 36", "child_months: 0"),
        ),
        Case(
            "zero-setting-konnect",
            "zero period or minimum",
            f"config/{VL}",
            "below the minimum of 1",
            _replace(VL, "settings: {months: 6}", "settings: {months: 0}"),
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


def _identifiers() -> list[Case]:
    cases = []
    for place, file, old, template in IDENTIFIER_PLACES:
        for n, name in enumerate(HOSTILE_NAMES):
            new = template.replace("{}", _quoted(name))
            # An empty key in `{"": id}` or `"": name` is still a name that is no identifier.
            cases.append(
                Case(
                    f"identifier-{place}-{n}",
                    "not a plain SQL identifier",
                    f"config/{file}",
                    "SQL identifier",
                    _replace(file, old, new),
                )
            )
    return cases


def _settings() -> list[Case]:
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


def _yml() -> list[Case]:
    customer = b"customer: kdv-de-regenboog\nproducts: {flexkids: {tenant: 3001}}\n"
    return [
        Case(
            "yml-customer",
            ".yml file",
            "config/customers/kdv-de-regenboog.yml",
            "rename it to kdv-de-regenboog.yaml",
            _write("customers/kdv-de-regenboog.yml", customer),
        ),
        Case(
            "yml-customer-upper",
            ".yml file",
            "config/customers/kdv-de-regenboog.YAML",
            "only files ending in .yaml",
            _write("customers/kdv-de-regenboog.YAML", customer),
        ),
        Case(
            "yml-product",
            ".yml file",
            "config/products/parnassys.yml",
            "rename it to parnassys.yaml",
            _write("products/parnassys.yml", b"product: parnassys\n"),
        ),
        Case(
            "yml-product-mixed",
            ".yml file",
            "config/products/parnassys.Yml",
            "only files ending in .yaml",
            _write("products/parnassys.Yml", b"product: parnassys\n"),
        ),
        Case(
            "yml-catalogue",
            ".yml file",
            "config/catalogue.yml",
            "rename it to catalogue.yaml",
            lambda d: (d / CAT).rename(d / "catalogue.yml"),
        ),
    ]


def _duplicates() -> list[Case]:
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
            _replace(file, old, new),
        )
        for i, (file, old, new) in enumerate(edits)
    ]


def _tenants() -> list[Case]:
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
            _replace(KDV, "tenant: 1042", f"tenant: {value}"),
        )
        for i, (value, why) in enumerate(values)
    ]


def _clashes() -> list[Case]:
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
            _both(
                _replace(KDV, "tenant: 1042", f"tenant: {first}"),
                _replace(VL, "tenant: 2077", f"tenant: {second}"),
            ),
        )
        for i, (first, second) in enumerate(pairs)
    ]


def _yaml() -> list[Case]:
    texts = [
        ("tag-int", "x: !!int abc\n", "tag tag:yaml.org,2002:int is not used"),
        ("tag-timestamp", "x: !!timestamp 2026-13-30\n", "is not used in configuration files"),
        ("tag-binary", "x: !!binary '@@@'\n", "is not used in configuration files"),
        ("tag-python", "x: !!python/object/apply:os.system ['true']\n", "is not used"),
        ("tag-set", "x: !!set {a, b}\n", "is not used in configuration files"),
        ("tag-custom", "x: !secret abc\n", "is not used in configuration files"),
        ("complex-key", "? [a, b]\n: 1\n", "a key must be a plain name"),
        ("alias-key", "k: &k [a]\n*k : 1\n", "a key must be a plain name"),
        ("two-documents", "---\nx: 1\n", "expected a single document"),
        ("undefined-alias", "x: *nowhere\n", "found undefined alias"),
        ("nul", "x: \x00\n", "is not allowed in YAML"),
        ("escape", "x: \x1b[31m\n", "is not allowed in YAML"),
        ("unclosed-quote", "x: 'abc\n", "YAML syntax error"),
        ("tab-indent", "x:\n\t- a\n", "YAML syntax error"),
        ("duplicate-anchor", "a: &x 1\nb: &x 2\nc: *x\n", "found duplicate anchor"),
    ]
    cases = [
        Case(
            f"yaml-{name}",
            "YAML that is no configuration",
            f"config/{KDV}",
            why,
            _append(KDV, text),
        )
        for name, text, why in texts
    ]
    cases += [
        Case(
            "yaml-top-list",
            "YAML that is no configuration",
            f"config/{KDV}",
            "must hold a mapping",
            _write(KDV, b"- a\n- b\n"),
        ),
        Case(
            "yaml-empty",
            "YAML that is no configuration",
            f"config/{KDV}",
            "must hold a mapping",
            _write(KDV, b""),
        ),
        Case(
            "yaml-scalar",
            "YAML that is no configuration",
            f"config/{FLEX}",
            "must hold a mapping",
            _write(FLEX, b"flexkids\n"),
        ),
    ]
    return cases


def _files() -> list[Case]:
    def fifo(config_dir: Path) -> None:
        (config_dir / KDV).unlink()
        os.mkfifo(config_dir / KDV)

    def folder(config_dir: Path) -> None:
        (config_dir / "customers" / "kdv-de-regenboog.yaml").mkdir()

    def loop(config_dir: Path) -> None:
        (config_dir / KDV).unlink()
        (config_dir / KDV).symlink_to(config_dir / KDV)

    def dangling(config_dir: Path) -> None:
        (config_dir / "customers" / "kdv-de-regenboog.yaml").symlink_to(config_dir / "nowhere")

    return [
        Case("file-fifo", "not a regular file", f"config/{KDV}", "not a regular file", fifo),
        Case(
            "file-folder",
            "not a regular file",
            "config/customers/kdv-de-regenboog.yaml",
            "not a regular file",
            folder,
        ),
        Case(
            "file-symlink-loop", "not a regular file", f"config/{KDV}", "cannot read the file", loop
        ),
        Case(
            "file-dangling",
            "not a regular file",
            "config/customers/kdv-de-regenboog.yaml",
            "cannot read the file",
            dangling,
        ),
    ]


def hostile_cases() -> list[Case]:
    """Every case of the corpus; ids are unique and stable."""
    cases = [
        *_dates(),
        *_encodings(),
        *_aliases(),
        *_nesting(),
        *_sizes(),
        *_numbers(),
        *_zeros(),
        *_identifiers(),
        *_settings(),
        *_yml(),
        *_duplicates(),
        *_tenants(),
        *_clashes(),
        *_yaml(),
        *_files(),
    ]
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise AssertionError("hostile case ids must be unique")
    return cases
