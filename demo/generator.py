"""Deterministic, obviously synthetic Dutch records for the demo schemas.

How the data is made:

- Everything comes from `random.Random`, seeded per table with the seed, product, tenant
  and table name: the same arguments always give the same rows, and two tenants seeded
  into one shared FlexKids database get different people.
- People look Dutch (first names, surnames with tussenvoegsels, streets, "1234 AB"
  postcodes, "06-12345678" mobile numbers) but cannot be real: e-mail addresses are on
  example.nl / example.org, every BSN fails the elfproef (11-check), every IBAN (bank code
  DEMO) fails the mod-97 check, IP addresses come from the documentation ranges.
- The time-basis columns (the mapping's `dates:`) are what retention rules look at, so they
  are placed on purpose: for every cutoff passed in `around`, rows fall exactly on the day
  before, the day of and the day after it (timestamps at several times of day, including
  the UTC hours where an Amsterdam day starts); the rest spread over the last ten years;
  nullable bases also get rows with NULL (still registered, still employed, never logged
  in), and `*_on` bases a few dates in the near future.
- Subject rows get a random number of dependents (login events, photos, emergency contacts),
  sometimes none.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from demo.fakes import (
    GROUPS,
    HEALTH,
    STAFF_ROLES,
    at_some_time,
    bsn_passes_elfproef,
    days_before,
    fake_address,
    fake_bsn,
    fake_email,
    fake_gender,
    fake_iban,
    fake_ip,
    fake_name,
    fake_password_hash,
    fake_phone,
    iban_passes_mod97,
)
from demo.schemas import PERSONAL_COLUMNS, metadata_for

__all__ = ["BASIS", "bsn_passes_elfproef", "iban_passes_mod97", "personal_values", "seed"]

Row = dict[str, Any]
Basis = dt.date | dt.datetime | None

# The time-basis column of each subject table, which the generator places around every cutoff
# (a column of the `dates:` of config/products/*.yaml; a basis read from several columns or
# from a related table is built on these too).
BASIS: Mapping[str, Mapping[str, str]] = {
    "flexkids": {
        "app_user": "last_login_at",
        "parent": "relation_ended_on",
        "child": "deregistered_on",
        "invoice": "invoice_date",
        "staff": "employment_ended_on",
    },
    "konnect": {
        "account": "last_login_at",
        "parent": "last_active_at",
        "child": "left_on",
        "staff": "left_on",
    },
}
# Midnight, and either side of where an Amsterdam day starts in UTC (22:00 summer, 23:00 winter).
EDGE_TIMES = (
    dt.time(0, 0, 0),
    dt.time(21, 59, 59),
    dt.time(22, 0, 0),
    dt.time(22, 59, 59),
    dt.time(23, 0, 0),
    dt.time(23, 59, 59),
)
SPREAD_DAYS = 3652  # about ten years


def _day(value: Basis) -> dt.date | None:
    return value.date() if isinstance(value, dt.datetime) else value


# --- tables ------------------------------------------------------------------------------


def basis_values(
    rng: random.Random,
    *,
    timestamps: bool,
    nullable: bool,
    future: bool,
    today: dt.date,
    around: Sequence[dt.date],
    size: int,
) -> list[Basis]:
    """The basis values of one table: edges around every cutoff, a spread, NULLs, future."""
    values: list[Basis] = []
    for day in sorted({c + dt.timedelta(days=o) for c in around for o in (-1, 0, 1)}):
        if timestamps:
            values += [dt.datetime.combine(day, t) for t in EDGE_TIMES]
        else:
            values.append(day)
    for _ in range(size):
        day = days_before(rng, today, 0, SPREAD_DAYS)
        values.append(at_some_time(rng, day) if timestamps else day)
    if future:
        values += [today + dt.timedelta(days=rng.randint(1, 90)) for _ in range(max(1, size // 20))]
    if nullable:
        values += [None] * max(1, size // 8)
    rng.shuffle(values)
    return values


class _Seeder:
    """Builds and inserts the rows of one product, table by table, in one transaction."""

    def __init__(
        self, conn: sa.Connection, product: str, tenant: int | None, today: dt.date, seed: int
    ) -> None:
        self.conn = conn
        self.product = product
        self.tenant = tenant
        self.today = today
        self.seed = seed
        self.tables = metadata_for(product).tables
        self.counts: dict[str, int] = dict.fromkeys(self.tables, 0)
        self.parents: list[tuple[int, Row]] = []

    def rng(self, table: str) -> random.Random:
        return random.Random(f"{self.seed}/{self.product}/{self.tenant}/{table}")

    def insert(self, table: str, rows: list[Row]) -> list[int]:
        if not rows:
            return []
        target = self.tables[table]
        if self.tenant is not None and "organisation_id" in target.c:
            rows = [{**row, "organisation_id": self.tenant} for row in rows]
        self.counts[table] += len(rows)
        stmt = target.insert().returning(target.c.id, sort_by_parameter_order=True)
        return list(self.conn.execute(stmt, rows).scalars())

    def subjects(
        self,
        table: str,
        build: Callable[[random.Random, Basis], Row],
        around: Sequence[dt.date],
        size: int,
    ) -> tuple[random.Random, list[tuple[int, Row]]]:
        rng = self.rng(table)
        column = self.tables[table].c[BASIS[self.product][table]]
        bases = basis_values(
            rng,
            timestamps=isinstance(column.type, sa.DateTime),
            nullable=bool(column.nullable),
            future=column.name.endswith("_on"),
            today=self.today,
            around=around,
            size=size,
        )
        rows = [{**build(rng, basis), column.name: basis} for basis in bases]
        return rng, list(zip(self.insert(table, rows), rows, strict=True))

    # --- row builders shared by both products ---

    def person(self, rng: random.Random, at: Basis, *, low: int, high: int) -> Row:
        gender = fake_gender(rng)
        first, last = fake_name(rng, gender)
        born = days_before(rng, self.until(at), low * 365, high * 365)
        return {
            "first_name": first,
            "last_name": last,
            "gender": gender,
            "birth_date": born,
            "phone": fake_phone(rng),
            "email": fake_email(rng, first, last),
            "bsn": fake_bsn(rng),
            **fake_address(rng),
        }

    def until(self, basis: Basis) -> dt.date:
        """The last day a record was active: its basis, or today while it is open."""
        day = _day(basis)
        return self.today if day is None else min(day, self.today)

    def started(self, rng: random.Random, basis: Basis, low: int, high: int) -> dt.date:
        """A start date `low`..`high` days before the record stopped being active."""
        return days_before(rng, self.until(basis), low, high)

    def pick_parent(self, rng: random.Random) -> tuple[int | None, Row]:
        if not self.parents or rng.random() < 0.1:
            return None, {}
        return rng.choice(self.parents)

    def child(self, rng: random.Random, basis: Basis) -> Row:
        parent_id, parent = self.pick_parent(rng)
        me = self.person(rng, basis, low=1, high=12)
        end = self.until(basis)
        joined = me["birth_date"] + dt.timedelta(
            days=rng.randint(60, (end - me["birth_date"]).days)
        )
        return {
            **me,
            "last_name": parent.get("last_name", me["last_name"]),
            **{k: parent[k] for k in ("street", "postcode", "city") if k in parent},
            "parent_id": parent_id,
            "notes": rng.choice(HEALTH) if rng.random() < 0.4 else None,
            "group_name": rng.choice(GROUPS),
            "joined": joined,
            "created_at": at_some_time(rng, joined),
        }

    def photos(
        self, rng: random.Random, children: list[tuple[int, Row]], joined: str
    ) -> list[tuple[int, dt.datetime]]:
        """(child id, moment) for 0-3 photos per child, taken while it was registered."""
        found = []
        for child_id, row in children:
            end = self.until(row[BASIS[self.product]["child"]])
            for _ in range(rng.randint(0, 3)):
                day = days_before(rng, end, 0, (end - row[joined]).days)
                found.append((child_id, at_some_time(rng, day)))
        return found

    # --- FlexKids ---

    def flexkids(self, around: Sequence[dt.date], size: int) -> None:
        def user(rng: random.Random, basis: Basis) -> Row:
            first, last = fake_name(rng, fake_gender(rng))
            return {
                "full_name": f"{first} {last}",
                "email": fake_email(rng, first, last),
                "phone": fake_phone(rng) if rng.random() < 0.7 else None,
                "password_hash": fake_password_hash(rng),
                "role": rng.choices(("parent", "staff", "admin"), weights=(80, 15, 5))[0],
                "created_at": at_some_time(rng, self.started(rng, basis, 1, 1500)),
            }

        rng, users = self.subjects("app_user", user, around, size)
        events = []
        for user_id, row in users:
            last = row["last_login_at"]
            if last is None or rng.random() < 0.2:
                continue  # never logged in, or the events were already cleaned up
            first = row["created_at"]
            times = [last] + [
                min(last, at_some_time(rng, days_before(rng, last.date(), 0, (last - first).days)))
                for _ in range(rng.randint(0, 4))
            ]
            events += [
                {
                    "user_id": user_id,
                    "occurred_at": when,
                    "ip_address": fake_ip(rng),
                    "succeeded": rng.random() < 0.9,
                }
                for when in sorted(times)
            ]
        self.insert("login_event", events)

        def parent(rng: random.Random, basis: Basis) -> Row:
            me = self.person(rng, basis, low=20, high=50)
            me.pop("gender")
            began = self.started(rng, basis, 180, 3650)
            return {**me, "relation_started_on": began, "created_at": at_some_time(rng, began)}

        _, self.parents = self.subjects("parent", parent, around, size)

        def child(rng: random.Random, basis: Basis) -> Row:
            row = self.child(rng, basis)
            for key in ("phone", "email"):
                row.pop(key)
            row["health_notes"] = row.pop("notes")
            row["registered_on"] = row.pop("joined")
            return row

        rng, children = self.subjects("child", child, around, size)
        photos = [
            {"child_id": child_id, "file_name": f"IMG_{when:%Y%m%d_%H%M%S}.jpg", "taken_at": when}
            for child_id, when in self.photos(rng, children, "registered_on")
        ]
        self.insert("child_photo", photos)

        def invoice(rng: random.Random, basis: Basis) -> Row:
            day = _day(basis) or self.today
            paid = day + dt.timedelta(days=rng.randint(0, 30))
            return {
                "parent_id": self.pick_parent(rng)[0],
                "number": f"F{day.year}-{rng.randrange(10**6):06d}",
                "iban": fake_iban(rng) if rng.random() < 0.9 else None,
                "amount_cents": rng.randint(5_000, 250_000),
                "paid_on": paid if paid <= self.today and rng.random() < 0.9 else None,
                "created_at": at_some_time(rng, day),
            }

        self.subjects("invoice", invoice, around, size)

        def staff(rng: random.Random, basis: Basis) -> Row:
            began = self.started(rng, basis, 30, 4400)
            return {
                **self.person(rng, basis, low=18, high=60),
                "contract_hours": rng.choice((16, 20, 24, 28, 32, 36, 38)),
                "role": rng.choice(STAFF_ROLES),
                "employment_started_on": began,
                "created_at": at_some_time(rng, began),
            }

        self.subjects("staff", staff, around, size)

    # --- Konnect ---

    def konnect(self, around: Sequence[dt.date], size: int) -> None:
        def account(rng: random.Random, basis: Basis) -> Row:
            first, last = fake_name(rng, fake_gender(rng))
            return {
                "display_name": f"{first} {last}",
                "email": fake_email(rng, first, last),
                "password_hash": fake_password_hash(rng),
                "role": rng.choices(("parent", "staff", "admin"), weights=(80, 15, 5))[0],
                "last_login_ip": fake_ip(rng) if basis is not None else None,
                "created_at": at_some_time(rng, self.started(rng, basis, 1, 1500)),
            }

        self.subjects("account", account, around, size)

        def parent(rng: random.Random, basis: Basis) -> Row:
            me = self.person(rng, basis, low=20, high=50)
            me.pop("gender")
            return {**me, "created_at": at_some_time(rng, self.started(rng, basis, 30, 2000))}

        _, self.parents = self.subjects("parent", parent, around, size)

        def child(rng: random.Random, basis: Basis) -> Row:
            row = self.child(rng, basis)
            for key in ("phone", "email", "bsn", "street", "postcode", "city"):
                row.pop(key)
            row["allergy_notes"] = row.pop("notes")
            row["joined_on"] = row.pop("joined")
            return row

        rng, children = self.subjects("child", child, around, size)
        media = []
        for child_id, when in self.photos(rng, children, "joined_on"):
            video = rng.random() < 0.15
            name = f"VID_{when:%Y%m%d_%H%M%S}.mp4" if video else f"IMG_{when:%Y%m%d_%H%M%S}.jpg"
            kind = "video" if video else "photo"
            media.append(
                {"child_id": child_id, "file_name": name, "media_type": kind, "created_at": when}
            )
        self.insert("child_media", media)

        def staff(rng: random.Random, basis: Basis) -> Row:
            first, last = fake_name(rng, fake_gender(rng))
            began = self.started(rng, basis, 30, 4400)
            avatar = f"avatar-{rng.randrange(16**8):08x}.jpg" if rng.random() < 0.7 else None
            return {
                "display_name": f"{first} {last}",
                "phone": fake_phone(rng),
                "email": fake_email(rng, first, last),
                "avatar_file": avatar,
                "role": rng.choice(STAFF_ROLES),
                "joined_on": began,
                "created_at": at_some_time(rng, began),
            }

        rng, members = self.subjects("staff", staff, around, size)
        contacts = []
        for staff_id, row in members:
            for _ in range(rng.randint(0, 2)):  # emergency contacts: sometimes none
                first, last = fake_name(rng, fake_gender(rng))
                contacts.append(
                    {
                        "staff_id": staff_id,
                        "name": f"{first} {last}",
                        "phone": fake_phone(rng),
                        "relation": rng.choice(("partner", "ouder", "buur", "vriend")),
                        "created_at": at_some_time(rng, row["joined_on"]),
                    }
                )
        self.insert("staff_contact", contacts)


def _check(product: str, tenant: int | None, around: Sequence[dt.date], size: int) -> None:
    if product not in BASIS:
        raise ValueError(f"no demo data for product {product!r}; use one of {', '.join(BASIS)}")
    if product == "flexkids" and (tenant is None or isinstance(tenant, bool)):
        raise ValueError(
            "flexkids is one shared database: pass tenant=<organisation_id> (an integer, "
            "the customer's `tenant` in its file)"
        )
    if product == "flexkids" and not isinstance(tenant, int):
        raise ValueError("the flexkids tenant is an organisation_id: pass an integer")
    if product == "konnect" and tenant is not None:
        raise ValueError(
            "konnect has one database per customer and no tenant column: pass tenant=None"
        )
    if any(isinstance(day, dt.datetime) for day in around):
        raise ValueError("`around` holds cutoff dates (datetime.date), not datetimes")
    if size < 0:
        raise ValueError(f"size cannot be negative (got {size})")


def seed(
    url: str,
    product: str,
    *,
    tenant: int | None,
    today: dt.date,
    around: Sequence[dt.date],
    seed: int,
    size: int = 40,
) -> dict[str, int]:
    """Insert synthetic rows into `product`'s existing schema; return rows per table.

    `tenant` is the organisation_id (FlexKids) and must be None for Konnect. For every
    date in `around`, each subject table gets rows with its basis on that day, the day
    before and the day after; `size` more rows per subject table spread over ten years.
    """
    _check(product, tenant, around, size)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if not conn.dialect.insert_executemany_returning_sort_by_parameter_order:
                raise ValueError(
                    f"this {conn.dialect.name} server cannot return the ids of inserted rows; "
                    "seed SQLite (3.35+), PostgreSQL or MariaDB (10.5+)"
                )
            seeder = _Seeder(conn, product, tenant, today, seed)
            getattr(seeder, product)(around, size)
            return seeder.counts
    finally:
        engine.dispose()


def personal_values(url: str, product: str) -> set[str]:
    """Every non-empty name, e-mail, phone, BSN, IBAN and street in the database.

    Call it before a run: afterwards anonymised values (fixed texts, hashes) are read too.
    """
    tables = metadata_for(product).tables
    found: set[str] = set()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for name, columns in PERSONAL_COLUMNS[product].items():
                table = tables[name]
                for row in conn.execute(sa.select(*(table.c[c] for c in columns))):
                    found.update(v for v in row if isinstance(v, str) and v.strip())
    finally:
        engine.dispose()
    return found
