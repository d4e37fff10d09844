"""Row builders for the reference schemas: full rows with synthetic values, by id and basis."""

from __future__ import annotations

import datetime as dt
from typing import Any

D = dt.date
T = dt.datetime  # naive timestamps are UTC by convention
CREATED = T(2015, 1, 1, 9, 0)


def _person(
    i: int, *, contact: bool = True, address: bool = True, bsn: bool = True
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "first_name": f"Voornaam{i}",
        "last_name": f"Achternaam{i}",
        "birth_date": D(1987, 6, 15),
    }
    if address:
        row |= {"street": f"Dorpsstraat {i}", "postcode": "1234 AB", "city": "Utrecht"}
    if contact:
        row |= {"phone": f"06-1000{i:04d}", "email": f"persoon{i}@example.nl"}
    if bsn:
        row["bsn"] = f"10000{i:04d}"
    return row


def flexkids_row(table: str, i: int, org: int, basis: Any) -> dict[str, Any]:
    base = {"id": i, "organisation_id": org, "created_at": CREATED}
    if table == "app_user":
        return base | {
            "full_name": f"Gebruiker {i}",
            "email": f"user{i}@example.nl",
            "phone": f"06-2000{i:04d}",
            "password_hash": "bcrypt$x",
            "role": "planner",
            "last_login_at": basis,
        }
    if table == "parent":
        return (
            base | _person(i) | {"relation_started_on": D(2015, 1, 1), "relation_ended_on": basis}
        )
    if table == "child":
        return (
            base
            | _person(i, contact=False)
            | {
                "parent_id": None,
                "gender": "f",
                "health_notes": f"allergie {i}",
                "group_name": "Bolderburen",
                "registered_on": D(2016, 1, 1),
                "deregistered_on": basis,
            }
        )
    if table == "invoice":
        return base | {
            "parent_id": None,
            "number": f"F{i}",
            "iban": f"NL00DEMO{i:010d}",
            "amount_cents": 12345,
            "invoice_date": basis,
            "paid_on": None,
        }
    if table == "staff":
        return (
            base
            | _person(i)
            | {
                "gender": "m",
                "contract_hours": 32,
                "role": "pm",
                "employment_started_on": D(2010, 1, 1),
                "employment_ended_on": basis,
            }
        )
    raise AssertionError(table)


def konnect_row(table: str, i: int, basis: Any) -> dict[str, Any]:
    base = {"id": i, "created_at": CREATED}
    if table == "account":
        return base | {
            "display_name": f"Account {i}",
            "email": f"acc{i}@example.nl",
            "password_hash": "bcrypt$x",
            "role": "parent",
            "last_login_ip": "192.0.2.7",
            "last_login_at": basis,
        }
    if table == "parent":
        return base | _person(i) | {"last_active_at": basis}
    if table == "child":
        return (
            base
            | _person(i, contact=False, address=False, bsn=False)
            | {
                "parent_id": None,
                "gender": "m",
                "allergy_notes": f"noten {i}",
                "group_name": "Rups",
                "joined_on": D(2016, 1, 1),
                "left_on": basis,
            }
        )
    if table == "staff":
        return base | {
            "display_name": f"Leidster {i}",
            "phone": f"06-3000{i:04d}",
            "email": f"staff{i}@example.nl",
            "avatar_file": f"a{i}.jpg",
            "role": "pm",
            "joined_on": D(2010, 1, 1),
            "left_on": basis,
        }
    raise AssertionError(table)
