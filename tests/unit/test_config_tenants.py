"""Two customers never share a tenant: values clash when any column type makes them equal.

The worker binds a tenant converted exactly to the tenant column's type and compares text in
a binary collation. The oracle below converts two written values for each column type a
tenant column may have (integer, text, NUMERIC, UUID) as the database would; two customers
must be set aside exactly when some type makes their values equal.
"""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import copy_config
from worker.config.load import load_config
from worker.config.unique import tenant_keys

KDV = "customers/kdv-zonnestraal.yaml"
VLINDER = "customers/bso-de-vlinder.yaml"


def _as_integer(value: int | str) -> int | None:
    """On an integer column: an int, or a text the worker converts exactly (no zeros, signs)."""
    if isinstance(value, int):
        return value
    return int(value) if re.fullmatch(r"-?(0|[1-9][0-9]*)", value) else None


def _as_numeric(value: int | str) -> Decimal | None:
    """On a NUMERIC column: PostgreSQL and MariaDB read 01042, +1042, 1042.0, 1.042e3."""
    try:
        number = Decimal(value) if isinstance(value, int) else Decimal(value.strip())
    except InvalidOperation:
        return None
    if isinstance(value, str) and not re.fullmatch(r"[-+]?[0-9.]+([eE][-+]?[0-9]+)?", value):
        return None  # Decimal also reads "NaN", "Infinity"; a database column does not
    return number if number.is_finite() else None


def _as_uuid(value: int | str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _as_text(value: int | str) -> str:
    return str(value)


def equal_on_some_column(a: int | str, b: int | str) -> bool:
    """The oracle: some column type converts both values and finds them equal."""
    for convert in (_as_integer, _as_numeric, _as_uuid, _as_text):
        left, right = convert(a), convert(b)
        if left is not None and right is not None and left == right:
            return True
    return False


def _write_tenant(config_dir: Path, relative: str, old: str, value: int | str) -> None:
    """Write `value` as the tenant: a number plain, a text double-quoted (JSON is valid YAML)."""
    file = config_dir / relative
    written = json.dumps(value)
    file.write_text(
        file.read_text(encoding="utf-8").replace(old, f"tenant: {written}"), encoding="utf-8"
    )


def _both(tmp_path: Path, first: int | str, second: int | str) -> Any:
    config_dir = copy_config(tmp_path)
    _write_tenant(config_dir, KDV, "tenant: 1042", first)
    _write_tenant(config_dir, VLINDER, "tenant: 2077", second)
    return load_config(config_dir)


@pytest.mark.parametrize(
    ("first", "second", "clash"),
    [
        (1042, "1042", True),  # one value on an integer and on a text column
        ("01042", 1042, True),  # equal on NUMERIC; on text different rows, still too close
        ("+1042", "1042", True),
        ("1042.0", 1042, True),
        ("1.042e3", 1042, True),
        (-0, "0", True),
        ("550e8400-e29b-41d4-a716-446655440000", "550E8400E29B41D4A716446655440000", True),
        ("{550e8400-e29b-41d4-a716-446655440000}", "550e8400-e29b-41d4-a716-446655440000", True),
        ("KDV-A", "kdv-a", False),  # binary comparison: different tenants
        ("kdv-á", "kdv-a", False),
        ("1042", "1042b", False),
        (1042, 2077, False),
    ],
)
def test_tenants_clash_when_the_database_can_compare_them_equal(
    tmp_path: Path, first: int | str, second: int | str, clash: bool
) -> None:
    """1042 = "1042" = "01042" = "1042.0" and UUID spellings clash; 'KDV-A' ≠ 'kdv-a'."""
    config = _both(tmp_path, first, second)
    assert equal_on_some_column(first, second) is clash  # the oracle agrees with the table
    if not clash:
        assert config.problems == ()
        assert sorted(config.customers) == ["bso-de-vlinder", "kdv-zonnestraal"]
        return
    found = sorted(str(p) for p in config.problems)
    assert len(found) == 2, found
    assert found[1].startswith(f"config/{KDV}: products.flexkids.tenant (line 7): tenant ")
    assert "is also claimed by bso-de-vlinder (" in found[1]
    assert found[0].startswith(f"config/{VLINDER}: products.flexkids.tenant (line 7): tenant ")
    assert "is also claimed by kdv-zonnestraal (" in found[0]
    assert all("written exactly as the tenant column holds it" in p for p in found)
    assert config.customers == {}


LETTERS = st.sampled_from(["kdv-a", "KDV-A", "kdv-á", "Kdv-A", "org", "ORG", "x"])
NUMBER_TEXTS = st.builds(
    lambda n, zeros, sign, tail: f"{sign}{'0' * zeros}{n}{tail}",
    st.integers(0, 30),
    st.integers(0, 2),
    st.sampled_from(["", "+", "-"]),
    st.sampled_from(["", ".0", ".5", "e0", "e1"]),
)
UUIDS = st.builds(
    lambda u, style: {
        "plain": str(u),
        "upper": str(u).upper(),
        "hex": u.hex,
        "braces": "{" + str(u) + "}",
    }[style],
    st.sampled_from([uuid.UUID(int=1), uuid.UUID(int=2**100)]),
    st.sampled_from(["plain", "upper", "hex", "braces"]),
)
TENANTS = st.one_of(st.integers(-30, 30), NUMBER_TEXTS, LETTERS, UUIDS)


@given(first=TENANTS, second=TENANTS)
@settings(max_examples=300, deadline=None)
def test_tenant_keys_meet_exactly_when_some_column_compares_equal(
    first: int | str, second: int | str
) -> None:
    """For numbers, number texts, cased and accented words and UUIDs: keys meet as the oracle."""
    shared = tenant_keys(first) & tenant_keys(second)
    assert bool(shared) is equal_on_some_column(first, second)


@given(first=TENANTS, second=TENANTS)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_loading_sets_both_customers_aside_exactly_when_their_tenants_clash(
    tmp_path_factory: pytest.TempPathFactory, first: int | str, second: int | str
) -> None:
    """Through the files: two customers load exactly when no column could confuse them."""
    config = _both(tmp_path_factory.mktemp("tenants"), first, second)
    expected = (
        set() if equal_on_some_column(first, second) else {"bso-de-vlinder", "kdv-zonnestraal"}
    )
    assert set(config.customers) == expected, [str(p) for p in config.problems]
