"""No two customers may claim the same tenant value of a product, or the same database.

Two customers that share a tenant would each see, and change, the other's rows. The worker
binds a tenant value converted exactly to the tenant column's type and compares text in a
binary collation, so two values clash when some column type would make them equal:

- a number and its text: `1042` and `"1042"` (equal on an integer and on a text column);
- texts that read as the same number: `"01042"`, `"+1042"`, `"1042.0"` and `1042` (equal on a
  NUMERIC column; on an integer column the worker refuses `"01042"` anyway). On a text column
  they would be different rows, but a value that differs from another only in how the number
  is written is too easy to confuse: every claimant is set aside;
- texts that read as the same UUID in another spelling (upper case, braces, no hyphens), which
  a UUID column compares as one value.

Texts are otherwise compared exactly, byte for byte: `'KDV-A'` and `'kdv-a'` are different
tenants, as they are in a binary collation. (Spaces around a value are refused when the file
is read, since a PAD SPACE collation ignores trailing ones.)
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal

from worker.config.files import Doc, Problems
from worker.config.models import Customer, ProductMapping
from worker.config.samedb import Identity, describe, url_identity
from worker.errors import SettingsError
from worker.settings import read_secret

_NUMBER_RE = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,4})?")

TenantKey = tuple[str, object]


def tenant_keys(value: int | str) -> frozenset[TenantKey]:
    """What a tenant value equals on each column type it converts to; a shared key clashes.

    Every value has its text key (an integer column's value as text too); a number or a text
    that reads as one has a number key (1042, "1042", "01042", "+1042" and "1042.0" share
    it); a text that reads as a UUID has a UUID key. A set, since one text can be both:
    "00000000000000000000000000000001" is the number 1 and a UUID, and clashes with each.
    """
    keys: set[TenantKey] = {("text", str(value))}
    if isinstance(value, int):
        keys.add(("number", Decimal(value)))
        return frozenset(keys)
    if _NUMBER_RE.fullmatch(value):
        keys.add(("number", Decimal(value)))
    with contextlib.suppress(ValueError):  # not a UUID in any spelling
        keys.add(("uuid", uuid.UUID(value).int))
    return frozenset(keys)


def check_unique(
    parsed: list[tuple[Customer, Doc]],
    products: Mapping[str, ProductMapping],
    problems: Problems,
    env: Mapping[str, str] | None = None,
) -> set[str]:
    """Set aside every customer claiming a tenant value or a database another one claims.

    Nobody can tell which claimant is right, so all are set aside, including one that was
    valid before. Tenants are compared with `tenant_keys`; database variables by name and,
    given the environment `env`, by the database their URLs name (`worker.config.samedb`,
    without connecting). Returns the names of the customers set aside.
    """
    clashing: set[str] = set()
    for pname in sorted(products):
        owners = [
            (customer, doc, chosen.tenant)
            for customer, doc in parsed
            if (chosen := customer.products.get(pname)) is not None and chosen.tenant is not None
        ]
        by_key: dict[TenantKey, list[int]] = {}
        for index, (_, _, tenant) in enumerate(owners):
            for key in tenant_keys(tenant):
                by_key.setdefault(key, []).append(index)
        for index, (customer, doc, tenant) in enumerate(owners):
            others = sorted(
                {i for key in tenant_keys(tenant) for i in by_key[key] if i != index},
                key=lambda i: owners[i][0].customer,
            )
            if not others:
                continue
            named = ", ".join(f"{owners[i][0].customer} ({owners[i][2]!r})" for i in others)
            problems.at(
                doc,
                ("products", pname, "tenant"),
                f"tenant {tenant!r} of {pname} is also claimed by {named}: the database can "
                "compare these values as equal, and each customer would see the other's rows. "
                "Each customer needs its own value, written exactly as the tenant column holds "
                "it; all of them are set aside until it is fixed",
            )
            clashing.add(customer.customer)

    variables: dict[str, list[tuple[Customer, Doc, str]]] = {}
    for customer, doc in parsed:
        for pname, chosen in customer.products.items():
            if pname in products and chosen.database is not None:
                variables.setdefault(chosen.database.url_env, []).append((customer, doc, pname))
    if env is not None:
        clashing |= _same_databases(variables, env, problems)
    for variable, claimants in variables.items():
        if len(claimants) < 2:
            continue
        for customer, doc, pname in claimants:
            names = ", ".join(
                sorted(c.customer for c, _, _ in claimants if c.customer != customer.customer)
            )
            problems.at(
                doc,
                ("products", pname, "database", "url_env"),
                f"database variable {variable} is also claimed by {names}; each customer "
                "needs its own, so all of them are set aside until it is fixed",
            )
            clashing.add(customer.customer)
    return clashing


def _same_databases(
    variables: Mapping[str, list[tuple[Customer, Doc, str]]],
    env: Mapping[str, str],
    problems: Problems,
) -> set[str]:
    """Customers whose different URL variables name one database (per-customer tenancy)."""
    by_identity: dict[Identity, list[tuple[str, Customer, Doc, str]]] = {}
    for variable, claimants in variables.items():
        try:
            url = read_secret(env, variable)
        except SettingsError:
            continue  # reported when the database is opened
        identity = url_identity(url) if url else None
        if identity is not None:
            for customer, doc, pname in claimants:
                by_identity.setdefault(identity, []).append((variable, customer, doc, pname))
    clashing: set[str] = set()
    for identity, found in by_identity.items():
        if len({v for v, _, _, _ in found}) < 2 or len({c.customer for _, c, _, _ in found}) < 2:
            continue  # one variable (reported above), or one customer's own products
        for variable, customer, doc, pname in found:
            others = sorted(
                {f"{c.customer} ({v})" for v, c, _, _ in found if c.customer != customer.customer}
            )
            problems.at(
                doc,
                ("products", pname, "database", "url_env"),
                f"{variable} names {describe(identity)}, the same database as "
                f"{', '.join(others)} (URLs are compared without user, password or options, "
                "localhost and 127.0.0.1 as one host, the default port filled in): each "
                "customer needs its own database, so all of them are set aside until it is fixed",
            )
            clashing.add(customer.customer)
    return clashing
