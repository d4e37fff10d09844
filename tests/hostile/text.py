"""Hostile files and YAML: encodings, aliases, nesting, sizes, `.yml` names, tags, pipes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.hostile.base import CAT, FLEX, KDV, KON, Case, append, both, prepend, replace, write
from worker.config.yamlsafe import MAX_FILE_BYTES


def encodings() -> list[Case]:
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
            write(file, change),
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


def aliases() -> list[Case]:
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
                    append(file, "x_laughs:\n" + _laughs(levels, fan_out, "  ")),
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
                both(prepend(file, "x_anchors:\n" + _laughs(9, 9, "  ")), replace(file, old, new)),
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
            append(KDV, merge),
        ),
        Case(
            "long-text-aliases",
            "alias expansion",
            f"config/{KDV}",
            "2,097,152 characters",
            append(KDV, long_text),
        ),
        Case(
            "alias-loop-list",
            "alias expansion",
            f"config/{KDV}",
            "makes a loop",
            append(KDV, "x: &x [1, *x]\n"),
        ),
        Case(
            "alias-loop-map",
            "alias expansion",
            f"config/{FLEX}",
            "makes a loop",
            append(FLEX, "x: &x {a: *x}\n"),
        ),
    ]
    return cases


def nesting() -> list[Case]:
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
            append(file, text),
        )
        for file in (KDV, FLEX)
        for name, text in shapes.items()
    ]


def sizes() -> list[Case]:
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
            write(file, change),
        )
        for file in (KDV, FLEX, CAT)
        for name, change in shapes.items()
    ]


def yml() -> list[Case]:
    customer = b"customer: kdv-de-regenboog\nproducts: {flexkids: {tenant: 3001}}\n"
    return [
        Case(
            "yml-customer",
            ".yml file",
            "config/customers/kdv-de-regenboog.yml",
            "rename it to kdv-de-regenboog.yaml",
            write("customers/kdv-de-regenboog.yml", customer),
        ),
        Case(
            "yml-customer-upper",
            ".yml file",
            "config/customers/kdv-de-regenboog.YAML",
            "only files ending in .yaml",
            write("customers/kdv-de-regenboog.YAML", customer),
        ),
        Case(
            "yml-product",
            ".yml file",
            "config/products/parnassys.yml",
            "rename it to parnassys.yaml",
            write("products/parnassys.yml", b"product: parnassys\n"),
        ),
        Case(
            "yml-product-mixed",
            ".yml file",
            "config/products/parnassys.Yml",
            "only files ending in .yaml",
            write("products/parnassys.Yml", b"product: parnassys\n"),
        ),
        Case(
            "yml-catalogue",
            ".yml file",
            "config/catalogue.yml",
            "rename it to catalogue.yaml",
            lambda d: (d / CAT).rename(d / "catalogue.yml"),
        ),
    ]


def yaml() -> list[Case]:
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
            append(KDV, text),
        )
        for name, text, why in texts
    ]
    cases += [
        Case(
            "yaml-top-list",
            "YAML that is no configuration",
            f"config/{KDV}",
            "must hold a mapping",
            write(KDV, b"- a\n- b\n"),
        ),
        Case(
            "yaml-empty",
            "YAML that is no configuration",
            f"config/{KDV}",
            "must hold a mapping",
            write(KDV, b""),
        ),
        Case(
            "yaml-scalar",
            "YAML that is no configuration",
            f"config/{FLEX}",
            "must hold a mapping",
            write(FLEX, b"flexkids\n"),
        ),
    ]
    return cases


def files() -> list[Case]:
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
