"""Reference schemas of the products, as SQLAlchemy Core metadata.

Each product's mapping (config/products/<product>.yaml) names tables and columns; these
schemas hold every one of them, plus ordinary non-personal columns (amounts, groups,
created_at) so the data looks like a real product database. Conventions:

- `id` is an autoincrement integer primary key on every table;
- `*_on` columns are DATE, `*_at` columns naive DATETIME holding UTC;
- every time-basis column (the mapping's `dates:`) and every foreign key is indexed;
- columns a rule anonymises are nullable, and nothing personal is unique, so masking
  (a fixed text, a keyed hash) never trips a constraint.

FlexKids is one shared database: every subject table carries `organisation_id`, the
customer's tenant id; dependents (login_event, child_photo) reach it through their parent.
Konnect is one database per customer and has no tenant column; its staff_contact rows (a
staff member's emergency contacts) go with the staff member's anonymisation (a rule's
`related` rows).

The schemas work on SQLite, PostgreSQL (psycopg 3) and MariaDB (pymysql).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

PRODUCTS = ("flexkids", "konnect")

# Which columns hold names, e-mail addresses, phone numbers, BSNs, bank accounts and
# street addresses: the values `demo.generator.personal_values` collects so tests can
# search logs and the audit trail for leaks.
PERSONAL_COLUMNS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "flexkids": {
        "app_user": ("full_name", "email", "phone"),
        "parent": ("first_name", "last_name", "street", "phone", "email", "bsn"),
        "child": ("first_name", "last_name", "street", "bsn"),
        "invoice": ("iban",),
        "staff": ("first_name", "last_name", "street", "phone", "email", "bsn"),
    },
    "konnect": {
        "account": ("display_name", "email"),
        "parent": ("first_name", "last_name", "street", "phone", "email", "bsn"),
        "child": ("first_name", "last_name"),
        "staff": ("display_name", "phone", "email"),
    },
}


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


def _tenant() -> sa.Column[int]:
    return sa.Column("organisation_id", sa.Integer, nullable=False, index=True)


def _created() -> sa.Column[dt.datetime]:
    return sa.Column("created_at", sa.DateTime(), nullable=False)


def _person(
    *, address: bool = True, contact: bool = True, bsn: bool = True
) -> list[sa.Column[Any]]:
    """Name, address, contact and identity columns shared by parents, children and staff."""
    columns: list[sa.Column[Any]] = [
        sa.Column("first_name", sa.String(100)),
        sa.Column("last_name", sa.String(100)),
    ]
    if address:
        columns += [
            sa.Column("street", sa.String(100)),
            sa.Column("postcode", sa.String(10)),
            sa.Column("city", sa.String(100)),
        ]
    if contact:
        columns += [sa.Column("phone", sa.String(20)), sa.Column("email", sa.String(254))]
    columns.append(sa.Column("birth_date", sa.Date))
    if bsn:
        columns.append(sa.Column("bsn", sa.String(9)))
    return columns


def _fk(name: str, target: str, *, nullable: bool) -> sa.Column[int]:
    return sa.Column(name, sa.Integer, sa.ForeignKey(target), nullable=nullable, index=True)


def flexkids_metadata() -> sa.MetaData:
    """FlexKids: one shared database, `organisation_id` on every subject table."""
    md = sa.MetaData()
    sa.Table(
        "app_user",
        md,
        _id(),
        _tenant(),
        sa.Column("full_name", sa.String(100)),
        sa.Column("email", sa.String(254)),
        sa.Column("phone", sa.String(20)),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("role", sa.String(20), nullable=False),
        _created(),
        sa.Column("last_login_at", sa.DateTime(), index=True),
    )
    sa.Table(
        "login_event",
        md,
        _id(),
        _fk("user_id", "app_user.id", nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("ip_address", sa.String(45)),
        sa.Column("succeeded", sa.Boolean, nullable=False),
    )
    sa.Table(
        "parent",
        md,
        _id(),
        _tenant(),
        *_person(),
        sa.Column("relation_started_on", sa.Date, nullable=False),
        sa.Column("relation_ended_on", sa.Date, index=True),
        _created(),
    )
    sa.Table(
        "child",
        md,
        _id(),
        _tenant(),
        _fk("parent_id", "parent.id", nullable=True),
        *_person(contact=False),
        sa.Column("gender", sa.String(1)),
        sa.Column("health_notes", sa.Text),
        sa.Column("group_name", sa.String(50), nullable=False),
        sa.Column("registered_on", sa.Date, nullable=False),
        sa.Column("deregistered_on", sa.Date, index=True),
        _created(),
    )
    sa.Table(
        "child_photo",
        md,
        _id(),
        _fk("child_id", "child.id", nullable=False),
        sa.Column("file_name", sa.String(255)),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
    )
    sa.Table(
        "invoice",
        md,
        _id(),
        _tenant(),
        _fk("parent_id", "parent.id", nullable=True),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("iban", sa.String(34)),
        sa.Column("amount_cents", sa.Integer, nullable=False),
        sa.Column("invoice_date", sa.Date, nullable=False, index=True),
        sa.Column("paid_on", sa.Date),
        _created(),
    )
    sa.Table(
        "staff",
        md,
        _id(),
        _tenant(),
        *_person(),
        sa.Column("gender", sa.String(1)),
        sa.Column("contract_hours", sa.Integer),
        sa.Column("role", sa.String(50), nullable=False),
        sa.Column("employment_started_on", sa.Date, nullable=False),
        sa.Column("employment_ended_on", sa.Date, index=True),
        _created(),
    )
    return md


def konnect_metadata() -> sa.MetaData:
    """Konnect: one database per customer, so no tenant column."""
    md = sa.MetaData()
    sa.Table(
        "account",
        md,
        _id(),
        sa.Column("display_name", sa.String(100)),
        sa.Column("email", sa.String(254)),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("last_login_ip", sa.String(45)),
        sa.Column("last_login_at", sa.DateTime(), index=True),
        _created(),
    )
    sa.Table(
        "parent",
        md,
        _id(),
        *_person(),
        sa.Column("last_active_at", sa.DateTime(), index=True),
        _created(),
    )
    sa.Table(
        "child",
        md,
        _id(),
        _fk("parent_id", "parent.id", nullable=True),
        *_person(address=False, contact=False, bsn=False),
        sa.Column("gender", sa.String(1)),
        sa.Column("allergy_notes", sa.Text),
        sa.Column("group_name", sa.String(50), nullable=False),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("left_on", sa.Date, index=True),
        _created(),
    )
    sa.Table(
        "child_media",
        md,
        _id(),
        _fk("child_id", "child.id", nullable=False),
        sa.Column("file_name", sa.String(255)),
        sa.Column("media_type", sa.String(10), nullable=False),
        _created(),
    )
    sa.Table(
        "staff",
        md,
        _id(),
        sa.Column("display_name", sa.String(100)),
        sa.Column("phone", sa.String(20)),
        sa.Column("email", sa.String(254)),
        sa.Column("avatar_file", sa.String(255)),
        sa.Column("role", sa.String(50), nullable=False),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("left_on", sa.Date, index=True),
        _created(),
    )
    sa.Table(
        "staff_contact",
        md,
        _id(),
        _fk("staff_id", "staff.id", nullable=False),
        sa.Column("name", sa.String(100)),
        sa.Column("phone", sa.String(20)),
        sa.Column("relation", sa.String(20), nullable=False),
        _created(),
    )
    return md


_BUILDERS: Mapping[str, Callable[[], sa.MetaData]] = {
    "flexkids": flexkids_metadata,
    "konnect": konnect_metadata,
}


def metadata_for(product: str) -> sa.MetaData:
    """A fresh MetaData holding `product`'s reference schema."""
    try:
        build = _BUILDERS[product]
    except KeyError:
        known = ", ".join(PRODUCTS)
        raise ValueError(f"no demo schema for product {product!r}; use one of {known}") from None
    return build()


def create_schema(url: str, product: str) -> None:
    """Create `product`'s tables (those missing) in the database at `url`."""
    metadata = metadata_for(product)
    engine = sa.create_engine(url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()
