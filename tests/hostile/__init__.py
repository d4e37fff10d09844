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

from tests.hostile import text, values
from tests.hostile.base import CAT, FLEX, KDV, KON, VL, Case

__all__ = ["CAT", "FLEX", "KDV", "KON", "VL", "Case", "hostile_cases"]


def hostile_cases() -> list[Case]:
    """Every case of the corpus; ids are unique and stable."""
    cases = [
        *values.dates(),
        *text.encodings(),
        *text.aliases(),
        *text.nesting(),
        *text.sizes(),
        *values.numbers(),
        *values.zeros(),
        *values.identifiers(),
        *values.settings(),
        *text.yml(),
        *values.duplicates(),
        *values.tenants(),
        *values.clashes(),
        *text.yaml(),
        *text.files(),
    ]
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise AssertionError("hostile case ids must be unique")
    return cases
