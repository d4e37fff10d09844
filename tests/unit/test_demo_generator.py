"""The demo schemas match the product mappings, and the seeded data is fake, stable and
placed around the cutoffs the rules will use."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from demo.fakes import fake_bsn, fake_iban
from demo.generator import (
    BASIS,
    EDGE_TIMES,
    bsn_passes_elfproef,
    iban_passes_mod97,
    personal_values,
    seed,
)
from demo.schemas import PERSONAL_COLUMNS, PRODUCTS, create_schema, metadata_for
from tests.support import FIXTURE_CONFIG
from worker.configload import Config, load_config
from worker.policy import effective_rules, rule_cutoff

TODAY = dt.date(2026, 3, 15)
NOW = dt.datetime(2026, 3, 15, 1, 30, tzinfo=dt.UTC)
TENANT = {"flexkids": 1042, "konnect": None}
PERSONAL_CATEGORIES = {"name", "email", "phone", "bsn", "bank", "address"}


@pytest.fixture(scope="module")
def config() -> Config:
    loaded = load_config(FIXTURE_CONFIG)
    assert loaded.problems == ()
    return loaded


def cutoffs(config: Config, customer: str, product: str) -> list[dt.date]:
    """The cutoff dates of every rule of one customer × product on TODAY."""
    chosen = config.customers[customer]
    rules = effective_rules(config.catalogue, chosen, config.products[product])
    return sorted({rule_cutoff(rule, NOW, chosen.timezone).date for rule in rules})


def schema_url(tmp_path: Path, product: str, name: str = "demo.db") -> str:
    url = f"sqlite:///{tmp_path / name}"
    create_schema(url, product)
    return url


EngineFor = Callable[[str], sa.Engine]


@pytest.fixture
def engine_for() -> Iterator[EngineFor]:
    """Engines on demand, all disposed after the test."""
    engines: list[sa.Engine] = []

    def make(url: str) -> sa.Engine:
        engines.append(sa.create_engine(url))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def read(engine: sa.Engine, product: str, table: str) -> list[dict[str, Any]]:
    target = metadata_for(product).tables[table]
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(target).order_by(target.c.id))]


def basis_day(value: dt.date | dt.datetime | None) -> dt.date | None:
    return value.date() if isinstance(value, dt.datetime) else value


# --- schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("product", PRODUCTS)
def test_created_schema_holds_every_table_and_column_the_mapping_names(
    config: Config, tmp_path: Path, product: str
) -> None:
    """Every table, key, column, date, dependent reference and tenant column exists."""
    url = schema_url(tmp_path, product)
    create_schema(url, product)  # a second run leaves existing tables alone
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    found = {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}
    engine.dispose()
    mapping = config.products[product]
    tenant = mapping.tenancy.column
    for subject in mapping.subjects.values():
        expected = {*subject.key, *subject.columns, *subject.dates.values()}
        assert expected <= found[subject.table], subject.table
        if tenant:
            assert tenant in found[subject.table], subject.table
        pending = [(subject.table, d) for d in subject.dependents]
        while pending:
            parent, dep = pending.pop()
            assert {*dep.references, *dep.columns} <= found[dep.table], dep.table
            assert set(dep.references.values()) <= found[parent]
            assert tenant is None or tenant not in found[dep.table]
            pending += [(dep.table, d) for d in dep.dependents]
    if mapping.tenancy.per_customer:
        assert all("organisation_id" not in columns for columns in found.values())


@pytest.mark.parametrize("product", PRODUCTS)
def test_basis_and_personal_column_lists_agree_with_the_mapping(
    config: Config, product: str
) -> None:
    """The generator's basis columns and the personal columns follow the product YAML."""
    mapping = config.products[product]
    basis = {s.table: c for s in mapping.subjects.values() for c in s.dates.values()}
    assert dict(BASIS[product]) == basis
    personal = {
        s.table: {c for c, cat in s.columns.items() if cat in PERSONAL_CATEGORIES}
        for s in mapping.subjects.values()
    }
    assert {t: set(c) for t, c in PERSONAL_COLUMNS[product].items()} == {
        t: c for t, c in personal.items() if c
    }


@pytest.mark.parametrize(
    ("product", "table", "column", "target", "nullable"),
    [
        ("flexkids", "login_event", "user_id", "app_user", False),
        ("flexkids", "child_photo", "child_id", "child", False),
        ("flexkids", "child", "parent_id", "parent", True),
        ("flexkids", "invoice", "parent_id", "parent", True),
        ("konnect", "child_media", "child_id", "child", False),
    ],
)
def test_foreign_keys_are_declared_and_indexed(
    tmp_path: Path, product: str, table: str, column: str, target: str, nullable: bool
) -> None:
    """Each reference is a real foreign key to target.id, indexed, nullable as designed."""
    engine = sa.create_engine(schema_url(tmp_path, product))
    inspector = sa.inspect(engine)
    fks = inspector.get_foreign_keys(table)
    indexed = {tuple(i["column_names"]) for i in inspector.get_indexes(table)}
    columns = {c["name"]: c for c in inspector.get_columns(table)}
    engine.dispose()
    assert {(tuple(f["constrained_columns"]), f["referred_table"]) for f in fks} >= {
        ((column,), target)
    }
    assert (column,) in indexed
    assert columns[column]["nullable"] is nullable


@pytest.mark.parametrize("product", PRODUCTS)
def test_every_basis_column_is_indexed_and_typed_by_its_suffix(
    tmp_path: Path, product: str
) -> None:
    """Basis columns are indexed; *_at columns are DATETIME and *_on columns DATE."""
    engine = sa.create_engine(schema_url(tmp_path, product))
    inspector = sa.inspect(engine)
    for table, column in BASIS[product].items():
        assert (column,) in {tuple(i["column_names"]) for i in inspector.get_indexes(table)}
    for table in inspector.get_table_names():
        for col in inspector.get_columns(table):
            if col["name"].endswith("_at"):
                assert isinstance(col["type"], sa.DateTime), (table, col["name"])
            if col["name"].endswith("_on"):
                assert isinstance(col["type"], sa.Date), (table, col["name"])
    engine.dispose()


def test_an_unknown_product_is_refused_by_name() -> None:
    """Asking for a schema of a product without one names the products that exist."""
    with pytest.raises(ValueError, match=r"'parnassys'.*flexkids, konnect"):
        metadata_for("parnassys")


# --- fake values -------------------------------------------------------------------------


def test_elfproef_accepts_a_valid_number_and_rejects_others() -> None:
    """111222333 passes the 11-check; a changed digit, a short or non-digit value fail."""
    assert bsn_passes_elfproef("111222333")
    assert not bsn_passes_elfproef("111222334")
    assert not bsn_passes_elfproef("11122233")
    assert not bsn_passes_elfproef("11122233x")
    assert not bsn_passes_elfproef("\uff11" * 9)  # full-width digits are not ASCII digits


def test_no_generated_bsn_passes_the_elfproef() -> None:
    """Thousands of generated BSNs are nine digits and all fail the 11-check."""
    rng = random.Random(1)
    values = [fake_bsn(rng) for _ in range(20_000)]
    assert all(re.fullmatch(r"\d{9}", v) for v in values)
    assert not any(bsn_passes_elfproef(v) for v in values)


def test_generated_ibans_are_dutch_shaped_but_never_valid() -> None:
    """A known valid IBAN passes mod-97; generated ones are NL-shaped and always fail it."""
    assert iban_passes_mod97("NL91 ABNA 0417 1643 00")
    rng = random.Random(2)
    values = [fake_iban(rng) for _ in range(2_000)]
    assert all(re.fullmatch(r"NL00DEMO\d{10}", v) for v in values)
    assert not any(iban_passes_mod97(v) for v in values)


# --- seeding -----------------------------------------------------------------------------


def seeded(tmp_path: Path, product: str, name: str = "demo.db", **kw: Any) -> str:
    url = schema_url(tmp_path, product, name)
    args: dict[str, Any] = {
        "tenant": TENANT[product],
        "today": TODAY,
        "around": [dt.date(2025, 3, 15)],
        "seed": 7,
    }
    seed(url, product, **{**args, **kw})
    return url


@pytest.mark.parametrize("product", PRODUCTS)
def test_seeding_is_deterministic_for_a_seed(
    tmp_path: Path, engine_for: EngineFor, product: str
) -> None:
    """The same seed gives identical databases; another seed gives other people."""
    first = engine_for(seeded(tmp_path, product, "a.db"))
    again = engine_for(seeded(tmp_path, product, "b.db"))
    other = engine_for(seeded(tmp_path, product, "c.db", seed=8))
    for table in metadata_for(product).tables:
        assert read(first, product, table) == read(again, product, table), table
    assert read(first, product, "parent") != read(other, product, "parent")


@pytest.mark.parametrize(
    ("customer", "product"),
    [
        ("kdv-zonnestraal", "flexkids"),
        ("bso-de-vlinder", "flexkids"),
        ("kdv-zonnestraal", "konnect"),
    ],
)
def test_rows_land_on_the_day_before_on_and_after_every_cutoff(
    config: Config, tmp_path: Path, engine_for: EngineFor, customer: str, product: str
) -> None:
    """Each subject table has basis values on cutoff-1, cutoff and cutoff+1 for every cutoff."""
    around = cutoffs(config, customer, product)
    assert len(around) >= 2  # several rules, several cutoffs
    engine = engine_for(seeded(tmp_path, product, around=around, size=10))
    for table, column in BASIS[product].items():
        values = [r[column] for r in read(engine, product, table)]
        days = Counter(basis_day(v) for v in values)
        for cut in around:
            for offset in (-1, 0, 1):
                assert days[cut + dt.timedelta(days=offset)] >= 1, (table, cut, offset)
        if column.endswith("_at"):
            stamps = {v for v in values if v is not None}
            for cut in around:
                for when in EDGE_TIMES:
                    assert dt.datetime.combine(cut, when) in stamps, (table, cut, when)


@pytest.mark.parametrize("product", PRODUCTS)
def test_nullable_bases_get_open_rows_and_the_rest_spreads_over_years(
    tmp_path: Path, engine_for: EngineFor, product: str
) -> None:
    """Nullable basis columns hold NULLs; values spread over about ten years up to today."""
    engine = engine_for(seeded(tmp_path, product, size=60))
    columns = metadata_for(product).tables
    for table, column in BASIS[product].items():
        values = [basis_day(r[column]) for r in read(engine, product, table)]
        dates = [v for v in values if v is not None]
        assert (None in values) is bool(columns[table].c[column].nullable), table
        assert min(dates) >= TODAY - dt.timedelta(days=3653), table
        assert min(dates) < TODAY - dt.timedelta(days=5 * 365), table
        future = [d for d in dates if d > TODAY + dt.timedelta(days=1)]
        assert bool(future) is column.endswith("_on"), table


@pytest.mark.parametrize("product", PRODUCTS)
def test_returned_counts_match_the_rows_and_dependents_vary(
    tmp_path: Path, engine_for: EngineFor, product: str
) -> None:
    """Counts per table are what was inserted; dependents point at real rows, 0 to a few each."""
    url = schema_url(tmp_path, product)
    counts = seed(url, product, tenant=TENANT[product], today=TODAY, around=[], seed=3)
    engine = engine_for(url)
    tables = metadata_for(product).tables
    assert counts == {t: len(read(engine, product, t)) for t in tables}
    deps = {
        "flexkids": [
            ("login_event", "user_id", "app_user", 5),
            ("child_photo", "child_id", "child", 3),
        ],
        "konnect": [("child_media", "child_id", "child", 3)],
    }[product]
    for table, column, parent, most in deps:
        per_parent = Counter(r[column] for r in read(engine, product, table))
        parents = {r["id"] for r in read(engine, product, parent)}
        assert set(per_parent) <= parents
        assert len(per_parent) < len(parents), "some rows must have no dependents"
        assert max(per_parent.values()) <= most
        assert len(set(per_parent.values())) > 1


def test_two_tenants_share_one_flexkids_database_without_mixing(
    tmp_path: Path, engine_for: EngineFor
) -> None:
    """Each tenant's rows carry its organisation_id, and the tenants get different people."""
    url = schema_url(tmp_path, "flexkids")
    first = seed(url, "flexkids", tenant=1042, today=TODAY, around=[], seed=1)
    second = seed(url, "flexkids", tenant=2077, today=TODAY, around=[], seed=1)
    engine = engine_for(url)
    for table in ("app_user", "parent", "child", "invoice", "staff"):
        rows = read(engine, "flexkids", table)
        by_tenant = Counter(r["organisation_id"] for r in rows)
        assert by_tenant == {1042: first[table], 2077: second[table]}
    names = {
        t: {r["bsn"] for r in read(engine, "flexkids", "parent") if r["organisation_id"] == t}
        for t in (1042, 2077)
    }
    assert not names[1042] & names[2077]


@pytest.mark.parametrize(
    ("product", "tenant", "message"),
    [
        ("konnect", 1042, r"konnect has one database per customer.*tenant=None"),
        ("flexkids", None, r"flexkids is one shared database: pass tenant=<organisation_id>"),
        ("flexkids", "1042", r"organisation_id: pass an integer"),
        ("parnassys", None, r"no demo data for product 'parnassys'"),
    ],
)
def test_tenant_must_fit_the_product(
    tmp_path: Path, product: str, tenant: Any, message: str
) -> None:
    """Konnect refuses a tenant and FlexKids requires an integer one, before connecting."""
    nowhere = f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    with pytest.raises(ValueError, match=message):
        seed(nowhere, product, tenant=tenant, today=TODAY, around=[], seed=1)


@pytest.mark.parametrize("product", PRODUCTS)
def test_seeded_values_look_dutch_and_cannot_be_real(
    tmp_path: Path, engine_for: EngineFor, product: str
) -> None:
    """Postcodes, mobiles, e-mails, BSNs, IBANs and IPs have Dutch shapes and fake markers."""
    engine = engine_for(seeded(tmp_path, product))
    rows = {t: read(engine, product, t) for t in metadata_for(product).tables}
    flat = [(c, v) for table in rows.values() for r in table for c, v in r.items() if v]
    checks = {
        "postcode": r"[1-9]\d{3} [A-Z]{2}",
        "phone": r"06-\d{8}",
        "email": r"[a-z0-9.]+@example\.(nl|org)",
        "bsn": r"\d{9}",
        "iban": r"NL00DEMO\d{10}",
        "ip_address": r"(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+|2001:db8::[0-9a-f]+",
        "last_login_ip": r"(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+|2001:db8::[0-9a-f]+",
    }
    for column, value in flat:
        if column in checks:
            assert re.fullmatch(checks[column], value), (column, value)
        if column == "bsn":
            assert not bsn_passes_elfproef(value)
        if column == "iban":
            assert not iban_passes_mod97(value)
    last_names = {v for c, v in flat if c == "last_name"}
    assert any(" " in name for name in last_names), "some surnames carry a tussenvoegsel"


@pytest.mark.parametrize("product", PRODUCTS)
def test_personal_values_are_every_personal_string_in_the_database(
    tmp_path: Path, engine_for: EngineFor, product: str
) -> None:
    """personal_values returns exactly the non-empty personal-column strings."""
    url = seeded(tmp_path, product)
    engine = engine_for(url)
    expected = {
        r[c]
        for table, columns in PERSONAL_COLUMNS[product].items()
        for r in read(engine, product, table)
        for c in columns
        if r[c]
    }
    found = personal_values(url, product)
    assert found == expected
    assert any("@example." in v for v in found)
    assert not {"Amsterdam", "Rotterdam"} & found  # cities are not collected


# --- real servers ------------------------------------------------------------------------


@pytest.mark.parametrize("product", PRODUCTS)
def test_schema_and_seed_work_on_every_supported_database(
    any_db_url: str, engine_for: EngineFor, product: str
) -> None:
    """create_schema and seed work on a fresh SQLite, PostgreSQL and MariaDB database."""
    create_schema(any_db_url, product)
    around = [dt.date(2025, 3, 15)]
    counts = seed(any_db_url, product, tenant=TENANT[product], today=TODAY, around=around, seed=5)
    engine = engine_for(any_db_url)
    for table, count in counts.items():
        assert len(read(engine, product, table)) == count, table
    for table, column in BASIS[product].items():
        days = {basis_day(r[column]) for r in read(engine, product, table)}
        assert {dt.date(2025, 3, 14), dt.date(2025, 3, 15), dt.date(2025, 3, 16)} <= days
    assert any(" " in v for v in personal_values(any_db_url, product))
