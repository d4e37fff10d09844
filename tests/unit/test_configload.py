"""Loading configuration: a broken file sets aside only what it describes."""

from __future__ import annotations

from pathlib import Path

from tests.support import FIXTURE_CONFIG, copy_config
from worker.configload import load_config


def _copy(tmp_path: Path) -> Path:
    return copy_config(tmp_path)


def test_the_tests_configuration_is_valid() -> None:
    """The tests' own configuration loads without a single problem."""
    config = load_config(FIXTURE_CONFIG)
    assert config.problems == ()
    assert sorted(config.customers) == ["bso-de-vlinder", "kdv-zonnestraal"]
    assert len(list(config.pairs())) == 4


def test_broken_product_mapping_leaves_other_products_of_its_customers_running(
    tmp_path: Path,
) -> None:
    """A product file with a problem stops that product only; its customers' others still run."""
    config_dir = _copy(tmp_path)
    flexkids = config_dir / "products" / "flexkids.yaml"
    flexkids.write_text(flexkids.read_text().replace("full_name: name", "full_name: nam"))
    config = load_config(config_dir)
    assert str(config.problems[0]).startswith("config/products/flexkids.yaml")
    assert len(config.problems) == 1
    assert sorted((c.customer, p.product) for c, p in config.pairs()) == [
        ("bso-de-vlinder", "konnect"),
        ("kdv-zonnestraal", "konnect"),
    ]


def test_broken_customer_file_stops_that_customer_only(tmp_path: Path) -> None:
    """A customer file with a problem sets that customer aside; the other customer runs."""
    config_dir = _copy(tmp_path)
    vlinder = config_dir / "customers" / "bso-de-vlinder.yaml"
    vlinder.write_text(vlinder.read_text().replace("child_months: 12", "child_months: 0"))
    config = load_config(config_dir)
    assert len(config.problems) == 1
    assert "products.flexkids.settings.child_months" in str(config.problems[0])
    assert {c.customer for c, _ in config.pairs()} == {"kdv-zonnestraal"}


def test_two_customers_may_not_share_a_tenant(tmp_path: Path) -> None:
    """A tenant id claimed by two customers sets both aside: each would see the other's data."""
    config_dir = _copy(tmp_path)
    vlinder = config_dir / "customers" / "bso-de-vlinder.yaml"
    vlinder.write_text(vlinder.read_text().replace("tenant: 2077", "tenant: 1042"))
    config = load_config(config_dir)
    assert len(config.problems) == 2
    assert all("tenant 1042 of flexkids is also claimed by" in str(p) for p in config.problems)
    assert list(config.pairs()) == []


def test_mapping_outside_annex_a_is_refused(tmp_path: Path) -> None:
    """A column whose category Annex A does not list for that kind of person fails to load."""
    config_dir = _copy(tmp_path)
    konnect = config_dir / "products" / "konnect.yaml"
    # Annex A.4 lists no BSN for staff in Konnect.
    konnect.write_text(
        konnect.read_text().replace(
            "columns: {display_name: name, phone: phone, email: email, avatar_file: photo}",
            "columns: {display_name: name, phone: phone, email: email, avatar_file: bsn}",
        )
    )
    config = load_config(config_dir)
    assert any("processing outside the agreement" in str(p) for p in config.problems)
    assert "konnect" not in config.products


def test_a_customer_may_not_name_a_shared_database_as_its_own(tmp_path: Path) -> None:
    """A per-customer database variable that is a shared product's variable is refused."""
    config_dir = _copy(tmp_path)
    kdv = config_dir / "customers" / "kdv-zonnestraal.yaml"
    kdv.write_text(
        kdv.read_text().replace("KONNECT_ZONNESTRAAL_DATABASE_URL", "FLEXKIDS_DATABASE_URL")
    )
    config = load_config(config_dir)
    assert any("is the shared database of flexkids" in str(p) for p in config.problems)
    assert "kdv-zonnestraal" not in config.customers


def test_a_setting_that_puts_a_later_stage_first_is_refused(tmp_path: Path) -> None:
    """child_months below the one-month health stage would delete before it anonymises."""
    config_dir = _copy(tmp_path)
    flexkids = config_dir / "products" / "flexkids.yaml"
    flexkids.write_text(
        flexkids.read_text().replace("period: 1m\n", "period: 6m\n")  # the health stage
    )
    vlinder = config_dir / "customers" / "bso-de-vlinder.yaml"
    vlinder.write_text(vlinder.read_text().replace("child_months: 12", "child_months: 3"))
    config = load_config(config_dir)
    assert len(config.problems) == 1
    problem = str(config.problems[0])
    assert "products.flexkids.settings.child_months" in problem
    assert "stage 'remove' of rule flexkids.child.deregistered would come at 3m" in problem
    assert "kdv-zonnestraal" in config.customers


def test_a_schedule_without_time_zone_runs_in_the_customers(tmp_path: Path) -> None:
    """The default schedule, and one without a time zone, are read in the customer's zone."""
    from worker.scheduler import schedule_for

    config_dir = _copy(tmp_path)
    vlinder = config_dir / "customers" / "bso-de-vlinder.yaml"
    vlinder.write_text(
        vlinder.read_text()
        .replace("timezone: Europe/Amsterdam", "timezone: America/Curacao")
        .replace("settings: {months: 6}", "settings: {months: 6}\n    schedule: {cron: 0 3 * * *}")
    )
    config = load_config(config_dir)
    assert config.problems == ()
    customer = config.customers["bso-de-vlinder"]
    assert schedule_for(customer, config.products["flexkids"]).timezone == "America/Curacao"
    konnect = schedule_for(customer, config.products["konnect"])
    assert (konnect.cron, konnect.timezone) == ("0 3 * * *", "America/Curacao")
